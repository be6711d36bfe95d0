"""Identity's use cases against a fresh SQLite file: every consumed message gets a decided fate."""

from __future__ import annotations

import json
import sqlite3

import pytest

from services.identity import messages
from services.identity.handlers import commands
from services.identity.store.sqlite import SqliteIdentityStore
from shared.contract import topics
from shared.contract.messages import CustomerEventResolved, CustomerMerged, decode
from tests.unit.identity.support import PSEUDO, customer_of_phone, event, incoming, make_deps, purchase

LI = "+8613800138000"
WANG = "+8613900139000"


@pytest.fixture
def deps(tmp_path):
    return make_deps(tmp_path / "identity.db")


def _published(outcome, topic: str) -> list:
    return [m for m in outcome.outbox if m.topic == topic]


def test_a_batch_is_processed_each_event_announced_under_its_customer_id(deps):
    batch = incoming([
        purchase("e1", {"phone": "138-0013-8000"}, "100.00"),
        purchase("e2", {"phone": "+86 138 0013 8000", "member_id": "M-1"}, "20.50"),
        event("e3", {"phone": "13900139000"}),
    ])
    outcome = messages.consume(batch, deps=deps)
    assert (outcome.processed, outcome.duplicates, outcome.dead_lettered) == (3, 0, 0)
    sent = _published(outcome, topics.CUSTOMER_EVENTS)
    li, wang = customer_of_phone(LI), customer_of_phone(WANG)
    assert [m.key for m in sent] == [li.encode(), li.encode(), wang.encode()]
    bodies = [decode(m.value) for m in sent]
    assert all(isinstance(b, CustomerEventResolved) for b in bodies)
    assert [(b.customer_id, b.record_id, b.event["id"]) for b in bodies] == [(li, li, "e1"), (li, li, "e2"),
                                                                           (wang, wang, "e3")]
    # The announcements were committed with the state, so a crash before the relay republishes them.
    assert [m.seq for m in deps.store.outbox_pending()] == [m.seq for m in outcome.outbox]
    assert deps.store.customer_count() == 2
    assert deps.store.stats([li]).spend_minor == 12_050
    assert [(i.type, i.value) for i in deps.store.identifiers([li])] == [("member_id", "M-1"), ("phone", LI)]


def test_a_repeated_source_and_id_changes_nothing_in_the_same_batch_or_later(deps):
    first = purchase("e1", {"phone": LI}, "100.00")
    outcome = messages.consume(incoming([first, first]), deps=deps)
    assert (outcome.processed, outcome.duplicates) == (1, 1)
    again = messages.consume(incoming([first, {**first, "data": {**first["data"], "amount": "999.00"}}]), deps=deps)
    assert (again.processed, again.duplicates, again.outbox) == (0, 2, [])
    stats = deps.store.stats([customer_of_phone(LI)])
    assert (stats.purchase_count, stats.spend_minor) == (1, 10_000)


def test_a_duplicate_of_a_provisional_customers_event_changes_nothing_after_the_merge(deps):
    follow = purchase("w1", {"wechat_openid": "oX-1"}, "30.00", source="wechat/mini")
    messages.consume(incoming([follow], topic="crm.channel.wechat"), deps=deps)
    provisional = "c_" + PSEUDO("wechat_openid", "oX-1")
    bind = event("w2", {"phone": "13800138000", "wechat_openid": "oX-1"}, source="wechat/mini", kind="crm.follow")
    merged = messages.consume(incoming([bind], topic="crm.channel.wechat"), deps=deps)
    li = customer_of_phone(LI)
    assert merged.counts["merges"] == 1
    (announce,) = _published(merged, topics.CUSTOMER_MERGED)
    body = decode(announce.value)
    assert isinstance(body, CustomerMerged) and announce.key == li.encode()
    assert (body.kind, body.survivor_id, body.merged_id, body.records) == ("customer.merged", li, provisional,
                                                                           [provisional])
    again = messages.consume(incoming([follow], topic="crm.channel.wechat", first_offset=9), deps=deps)
    assert (again.processed, again.duplicates, again.outbox) == (0, 1, [])
    stats = deps.store.stats(deps.store.group(li))
    assert (stats.purchase_count, stats.spend_minor) == (1, 3_000)


def test_malformed_messages_are_dead_lettered_with_reason_and_origin_and_the_rest_lands(deps):
    good = purchase("e1", {"phone": LI}, "10.00", source="wechat/mini")
    cut = '{"specversion": "1.0", "id": "e2", "source": "wechat/mini"'
    bad_amount = purchase("e3", {"phone": "13800138000"}, "12.345", source="wechat/mini")
    no_zone = {**event("e4", {"phone": LI}, source="wechat/mini"), "time": "2026-05-01T10:00:00"}
    origin = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    batch = incoming([good, cut, bad_amount, no_zone], topic="crm.channel.wechat", partition=3, first_offset=40,
                     headers=origin)
    outcome = messages.consume(batch, deps=deps)
    assert (outcome.processed, outcome.duplicates, outcome.dead_lettered) == (1, 0, 3)
    letters = _published(outcome, topics.DEADLETTER)
    assert [m.value for m in letters] == [batch[1].value, batch[2].value, batch[3].value]  # unchanged
    assert [m.key for m in letters] == [b"k1", b"k2", b"k3"]
    headers = dict(letters[1].headers)
    assert {k: headers[k] for k in ("crm.dlq.code", "crm.dlq.topic", "crm.dlq.partition", "crm.dlq.offset",
                                    "crm.dlq.service")} == {
        "crm.dlq.code": b"invalid_event", "crm.dlq.topic": b"crm.channel.wechat", "crm.dlq.partition": b"3",
        "crm.dlq.offset": b"42", "crm.dlq.service": b"identity"}
    assert headers["traceparent"].startswith(b"00-")  # the trace it belongs to travels with it
    stored = deps.store.dead_letters()
    assert [(d.offset, d.code) for d in stored] == [(41, "invalid_json"), (42, "invalid_event"), (43, "invalid_event")]
    assert stored[1].reason == "data.amount: Value error, must have at most 2 decimal places"
    assert all("13800138000" not in d.reason and "12.345" not in d.reason for d in stored)
    # Redelivered after a crash: the same letters are not counted or published twice.
    again = messages.consume(batch, deps=deps)
    assert (again.processed, again.duplicates, again.dead_lettered) == (0, 1, 0)
    assert deps.store.dead_letter_count() == 3


def test_an_amount_that_is_not_a_number_is_dead_lettered_instead_of_stopping_the_worker(deps):
    # decimal raised InvalidOperation through validation: the batch raised, the worker exited and the
    # redelivered batch stopped it again, forever.
    batch = incoming([purchase("e1", {"phone": LI}, "1.00"), purchase("e2", {"phone": LI}, "1,000.00")])
    outcome = messages.consume(batch, deps=deps)
    assert (outcome.processed, outcome.dead_lettered) == (1, 1)
    assert [(d.code, d.reason) for d in deps.store.dead_letters()] == [
        ("invalid_event", "data.amount: Value error, must be a decimal amount")]
    results = commands.ingest([purchase("e3", {"phone": LI}, "abc")], deps=deps, publish=lambda _: None)
    assert (results[0]["status"], results[0]["code"]) == ("rejected", "invalid_event")


class RefusingStore(SqliteIdentityStore):
    """A store that fails one order for a reason of its own, or every write as a locked database."""

    def __init__(self, path, *, refuse: str, error: Exception) -> None:
        super().__init__(path)
        self.refuse, self.error = refuse, error

    def add_purchases(self, rows) -> None:
        if any(row.order_id == self.refuse for row in rows):
            raise self.error
        super().add_purchases(rows)


def test_a_message_that_fails_for_a_reason_of_its_own_is_dead_lettered_alone(tmp_path):
    store = RefusingStore(tmp_path / "identity.db", refuse="o-e2", error=ValueError("refused"))
    deps = make_deps(tmp_path, store=store)
    batch = incoming([purchase("e1", {"phone": LI}, "1.00"), purchase("e2", {"phone": LI}, "2.00"),
                      purchase("e3", {"phone": WANG}, "3.00")], first_offset=7)
    outcome = messages.consume(batch, deps=deps)
    assert (outcome.processed, outcome.duplicates, outcome.dead_lettered) == (2, 0, 1)
    assert [store.event_seen("pos/SH-001", e) for e in ("e1", "e2", "e3")] == [True, False, True]
    (letter,) = store.dead_letters()
    assert (letter.offset, letter.code, letter.reason) == (8, "processing_error", "processing failed: ValueError")
    # Each customer's first purchase also names its owning store (issue 12).
    assert [m.topic for m in outcome.outbox] == [topics.CUSTOMER_EVENTS, topics.CUSTOMER_OWNERS, topics.CUSTOMER_EVENTS,
                                                 topics.CUSTOMER_OWNERS, topics.DEADLETTER]
    assert store.stats([customer_of_phone(LI)]).spend_minor == 100


def test_a_transient_store_error_is_raised_for_a_retry_and_commits_nothing(tmp_path):
    store = RefusingStore(tmp_path / "identity.db", refuse="o-e2",
                          error=sqlite3.OperationalError("database is locked"))
    deps = make_deps(tmp_path, store=store)
    batch = incoming([purchase("e1", {"phone": LI}, "1.00"), purchase("e2", {"phone": LI}, "2.00")])
    with pytest.raises(sqlite3.OperationalError):
        messages.consume(batch, deps=deps)
    assert store.event_seen("pos/SH-001", "e1") is False
    assert store.outbox_pending() == [] and store.dead_letter_count() == 0
    store.refuse = "nothing"  # the lock is gone: the retry lands the whole batch
    assert messages.consume(batch, deps=deps).processed == 2


def test_an_event_joining_two_phone_customers_records_a_conflict_and_links_nothing(deps):
    messages.consume(incoming([event("e1", {"phone": LI, "member_id": "M-1"}),
                                     event("e2", {"phone": WANG})]), deps=deps)
    outcome = messages.consume(incoming([event("e3", {"phone": WANG, "member_id": "M-1"})]), deps=deps)
    assert outcome.counts["conflicts"] == 1 and outcome.processed == 1
    li, wang = customer_of_phone(LI), customer_of_phone(WANG)
    (conflict,) = deps.store.conflicts(status="open", customer_id=wang, offset=0, limit=10)
    assert (conflict.kind, conflict.identifier_type, conflict.identifier_pseudonym, conflict.customer_ids,
            conflict.event_id) == ("would_merge_two_phone_customers", "member_id", PSEUDO("member_id", "M-1"),
                                   tuple(sorted((li, wang))), "e3")
    assert deps.store.find([("member_id", "M-1")])[("member_id", "M-1")].root_id == li
    assert deps.store.customer_count() == 2


def test_view_parts_from_other_services_are_held_and_other_kinds_ignored(deps):
    part = {"kind": "view.part", "customer_id": "c_x", "part": "loyalty", "value": {"points_balance": 5},
            "version": "2026-06-01T00:00:00Z-01"}
    other = {"kind": "loyalty.points_expired", "entry_id": "x", "customer_id": "c_x", "points": 1,
             "at": "2026-06-01T00:00:00Z"}
    outcome = messages.consume(incoming([part, other, "not json", {"kind": "from.the.future"}],
                                           topic="crm.loyalty.events"), deps=deps)
    assert (outcome.processed, outcome.dead_lettered, outcome.counts["ignored"]) == (1, 1, 2)
    assert deps.store.parts(["c_x"]) == {"loyalty": [{"points_balance": 5}]}


def test_several_updates_of_a_part_in_one_batch_leave_the_newest_version_and_of_equal_versions_the_last(deps):
    # Issue 13: a batch writes each customer's part once; what stays is what one write per message left.
    def part(customer: str, points: int, version: str) -> dict:
        return {"kind": "view.part", "customer_id": customer, "part": "loyalty",
                "value": {"points_balance": points}, "version": version}

    messages.consume(incoming([part("c_y", 1, "2026-06-03T00:00:00Z-01")], topic="crm.loyalty.events"), deps=deps)
    outcome = messages.consume(incoming([
        part("c_x", 10, "2026-06-02T00:00:00Z-01"), part("c_y", 2, "2026-06-02T00:00:00Z-01"),
        part("c_x", 20, "2026-06-02T00:00:00Z-01"), part("c_x", 5, "2026-06-01T00:00:00Z-01"),
    ], topic="crm.loyalty.events"), deps=deps)
    assert (outcome.processed, outcome.dead_lettered) == (4, 0)
    assert deps.store.parts(["c_x"]) == {"loyalty": [{"points_balance": 20}]}
    assert deps.store.parts(["c_y"]) == {"loyalty": [{"points_balance": 1}]}  # the held one is newer


# -- HTTP ingestion --------------------------------------------------------------------------------
def test_ingest_publishes_the_valid_events_and_reports_each_one(tmp_path):
    deps = make_deps(tmp_path / "identity.db", topic_prefix="t1.")
    sent: list = []
    items = [
        purchase("e1", {"phone": "138 0013 8000"}, "5.00"),
        {**event("e2", {"phone": LI}), "time": "2026-05-01T10:00:00"},
        event("e3", {"wechat_openid": "oX-1"}, source="wechat/oa", kind="crm.follow"),
        event("e4", {"phone": "0", "email": "null"}),
        42,
    ]
    results = commands.ingest(items, deps=deps, publish=sent.append)
    assert [(r["index"], r["status"], r.get("code")) for r in results] == [
        (0, "accepted", None), (1, "rejected", "invalid_event"), (2, "accepted", None),
        (3, "rejected", "no_usable_identifier"), (4, "rejected", "invalid_event")]
    assert results[0] == {"index": 0, "status": "accepted", "id": "e1", "source": "pos/SH-001",
                          "topic": "t1.crm.channel.pos"}
    assert results[1]["reasons"] == ["time: Input should have timezone info"]
    (batch,) = sent  # one publish call, acknowledged before the response
    assert [(o.topic, o.key) for o in batch] == [("t1.crm.channel.pos", PSEUDO("phone", LI).encode()),
                                                 ("t1.crm.channel.wechat", PSEUDO("wechat_openid", "oX-1").encode())]
    assert json.loads(batch[0].value)["data"]["amount"] == "5.00"


def test_ingest_publishes_nothing_when_every_event_is_rejected(deps):
    sent: list = []
    results = commands.ingest([{"specversion": "1.0"}], deps=deps, publish=sent.append)
    assert results[0]["status"] == "rejected" and sent == []
