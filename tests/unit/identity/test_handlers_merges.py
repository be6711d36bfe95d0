"""Identity's merge use cases: undoing a merge, reviewing conflicts, and profile fields whose newest
value wins whatever order the events arrive in."""

from __future__ import annotations

import itertools
from zoneinfo import ZoneInfo

import pytest

from services.identity import messages
from services.identity.handlers import commands, queries
from shared.contract import topics
from shared.contract.messages import CustomerMerged, decode
from shared.http.errors import Conflict, NotFound
from tests.unit.identity.support import PSEUDO, customer_of_phone, event, incoming, make_deps

LI = "+8613800138000"
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def deps(tmp_path):
    return make_deps(tmp_path / "identity.db")


def _merged(deps) -> tuple[str, str, str]:
    """A provisional WeChat customer bound to a phone customer; returns (survivor, merged, merge id)."""
    messages.consume(incoming([event("w1", {"wechat_openid": "oX-1"}, source="wechat/oa")]), deps=deps)
    messages.consume(incoming([event("w2", {"phone": LI, "wechat_openid": "oX-1"}, source="wechat/oa")]), deps=deps)
    survivor, merged = customer_of_phone(LI), "c_" + PSEUDO("wechat_openid", "oX-1")
    (merge,) = deps.store.merges([survivor])
    assert (merge.survivor_id, merge.merged_id) == (survivor, merged)
    assert merge.cause["identifier_type"] == "wechat_openid" and merge.cause["event_id"] == "w2"
    assert merge.cause["identifier"] == PSEUDO("wechat_openid", "oX-1")  # never the value itself
    return survivor, merged, merge.merge_id


def test_unmerge_gives_the_merged_customer_back_and_announces_it(deps):
    survivor, merged, merge_id = _merged(deps)
    done = commands.unmerge(survivor, merge_id, by="ops-key", deps=deps)
    (message,) = done.pop("outbox")
    assert done == {"merge_id": merge_id, "survivor_id": survivor, "restored_id": merged, "records": [merged]}
    body = decode(message.value)
    assert message.topic == topics.CUSTOMER_MERGED and message.key == survivor.encode()
    assert isinstance(body, CustomerMerged)
    assert (body.kind, body.survivor_id, body.merged_id, body.records) == ("customer.unmerged", survivor, merged,
                                                                           [merged])
    assert deps.store.outbox_pending()[-1].seq == message.seq  # committed with the unmerge itself
    assert (deps.store.group(survivor), deps.store.group(merged)) == ([survivor], [merged])
    merge = deps.store.merge_row(merge_id)
    assert merge.undone_by == "ops-key" and merge.undone_at is not None


def test_unmerge_can_be_asked_through_the_merged_customers_id(deps):
    survivor, merged, merge_id = _merged(deps)
    assert commands.unmerge(merged, merge_id, by="k", deps=deps)["restored_id"] == merged


def test_unmerge_refuses_an_unknown_a_foreign_or_an_undone_merge(deps):
    survivor, _, merge_id = _merged(deps)
    with pytest.raises(NotFound) as unknown:
        commands.unmerge(survivor, "m_nothing", by="k", deps=deps)
    assert unknown.value.code == "merge_not_found"
    with pytest.raises(NotFound):
        commands.unmerge("c_someone_else", merge_id, by="k", deps=deps)
    commands.unmerge(survivor, merge_id, by="k", deps=deps)
    with pytest.raises(Conflict) as twice:
        commands.unmerge(survivor, merge_id, by="k", deps=deps)
    assert twice.value.code == "merge_already_undone"
    assert len(deps.store.outbox_pending()) == 3 + 1  # two events, one merge, one unmerge: nothing more


def test_after_an_unmerge_the_pair_is_kept_apart_and_the_event_is_a_conflict_for_review(deps):
    survivor, merged, merge_id = _merged(deps)
    commands.unmerge(survivor, merge_id, by="k", deps=deps)
    later = messages.consume(incoming([event("w3", {"phone": LI, "wechat_openid": "oX-1"},
                                                   source="wechat/oa")]), deps=deps)
    assert (later.processed, later.counts["merges"], later.counts["conflicts"]) == (1, 0, 1)
    (conflict,) = deps.store.conflicts(status="open", customer_id=survivor, offset=0, limit=10)
    assert conflict.kind == "merge_was_undone" and conflict.customer_ids == tuple(sorted((survivor, merged)))
    assert deps.store.customer_count() == 2


def test_the_pair_stays_apart_after_the_restored_customer_joins_another_provisional_one(deps):
    survivor, merged, merge_id = _merged(deps)
    commands.unmerge(survivor, merge_id, by="k", deps=deps)
    # A web visitor whose record id sorts first: joined by an event naming both, the follower goes under it.
    web = next(f"u-{n}" for n in range(1000) if "c_" + PSEUDO("web_user_id", f"u-{n}") < merged)
    visitor = "c_" + PSEUDO("web_user_id", web)
    messages.consume(incoming([event("v1", {"web_user_id": web}, source="web/shop")]), deps=deps)
    joined = messages.consume(incoming([event("v2", {"wechat_openid": "oX-1", "web_user_id": web},
                                                    source="web/shop")]), deps=deps)
    assert joined.counts["merges"] == 1 and deps.store.group(visitor) == sorted([visitor, merged])
    # The phone customer and the follower were separated by an operator: not through the visitor either.
    later = messages.consume(incoming([event("v3", {"phone": LI, "web_user_id": web}, source="web/shop")]), deps=deps)
    assert (later.counts["merges"], later.counts["conflicts"]) == (0, 1)
    assert deps.store.group(survivor) == [survivor]
    (conflict,) = deps.store.conflicts(status="open", customer_id=visitor, offset=0, limit=10)
    assert conflict.kind == "merge_was_undone"


def test_a_conflict_is_closed_with_who_and_why(deps):
    survivor, _, merge_id = _merged(deps)
    commands.unmerge(survivor, merge_id, by="k", deps=deps)
    messages.consume(incoming([event("w3", {"phone": LI, "wechat_openid": "oX-1"})]), deps=deps)
    (conflict,) = deps.store.conflicts(status="open", customer_id=None, offset=0, limit=10)
    commands.close_conflict(conflict.conflict_id, status="dismissed", by="ops-key", note="same family", deps=deps)
    (closed,) = deps.store.conflicts(status="dismissed", customer_id=None, offset=0, limit=10)
    assert (closed.status, closed.resolved_by, closed.note) == ("dismissed", "ops-key", "same family")
    with pytest.raises(NotFound):
        commands.close_conflict("x_nothing", status="resolved", by="k", note=None, deps=deps)


PROFILES = [
    event("p1", {"phone": LI}, kind="crm.profile", source="pos/SH-001", time="2026-05-01T10:00:00+08:00",
          name="Li Wei", city="Shanghai"),
    event("p2", {"phone": LI}, kind="crm.profile", source="web/shop", time="2026-05-03T10:00:00+08:00",
          city="Hangzhou", attributes={"skin": "dry"}),
    event("p3", {"phone": LI}, kind="crm.profile", source="wechat/mini", time="2026-05-02T10:00:00+08:00",
          name="Li W.", birthday="1990-05-01"),
    event("p4", {"phone": LI}, kind="crm.consent", source="web/shop", time="2026-05-04T10:00:00+08:00",
          purpose="sms", granted=False),
    event("p5", {"phone": LI}, kind="crm.consent", source="pos/SH-001", time="2026-05-02T10:00:00+08:00",
          purpose="sms", granted=True),
]


def test_profile_fields_take_the_newest_value_by_event_time_whatever_the_arrival_order(tmp_path):
    seen = []
    orders = list(itertools.permutations(PROFILES))[::7]  # 18 of the 120, the first and the reversed among them
    assert orders[-1] == tuple(reversed(PROFILES))
    for n, order in enumerate(orders):
        deps = make_deps(tmp_path / f"identity-{n}.db")
        for one in order:  # one event per batch: the arrival order is the processing order
            messages.consume(incoming([one]), deps=deps)
        view = queries.customer_view(deps.store, customer_of_phone(LI), reveal=True, zone=SHANGHAI)
        seen.append((view.attributes, {k: v.event_id for k, v in view.attribute_sources.items()},
                     {k: (v["granted"], v["event_id"]) for k, v in view.consents.items()}))
    assert seen == [(
        {"name": "Li W.", "city": "Hangzhou", "birthday": "1990-05-01", "gender": None, "email": None,
         "custom": {"skin": "dry"}},
        {"attributes.skin": "p2", "birthday": "p3", "city": "p2", "name": "p3"},
        {"sms": (False, "p4")},
    )] * 18
