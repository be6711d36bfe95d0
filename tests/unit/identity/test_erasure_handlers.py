"""Issue 12, identity in process (no broker): an erasure removes every trace of the person from identity's
store and announces them erased; fed the same channel events again, identity drops each one that carries
an erased identifier before anything stores it, counted ``erased`` (also one that would be a dead letter)."""

from __future__ import annotations

import json

from services.identity import messages
from services.identity.handlers import privacy
from shared.contract.messages import (
    CustomerErased,
    ErasureConfirmed,
    ViewPartUpdated,
    decode,
    encode,
    next_part_version,
    part_version,
)
from tests.unit.identity.support import customer_of_phone, event, incoming, make_deps, purchase

PHONE = "+8613512340001"


def _batch() -> list:
    return [
        event("p1", {"phone": "135 1234 0001", "wechat_openid": "oGone"}, kind="crm.profile", source="wechat/oa",
              name="Gone Person", birthday="1958-07-19"),
        purchase("b1", {"phone": "135-1234-0001"}, "100.00"),
        purchase("bad1", {"phone": "0086 135 1234 0001"}, "not an amount"),  # a dead letter
        purchase("k1", {"phone": "13600000002"}, "50.00"),
        purchase("bad2", {"phone": "13600000002"}, "not an amount"),  # someone else's dead letter
    ]


def test_erasure_forgets_the_person_and_a_replay_is_dropped_and_counted(tmp_path):
    deps = make_deps(tmp_path / "identity.db")
    published: list = []
    deps.relay = published.extend
    first = messages.consume(incoming(_batch()), deps=deps)
    assert (first.processed, first.dead_lettered) == (3, 2)
    gone = customer_of_phone(PHONE)
    assert deps.store.record(gone) is not None

    erasure_id = privacy.erase(gone, reason="asked", by="k-admin", deps=deps).erasure_id

    store = deps.store
    assert store.record(gone) is None and store.find([("phone", PHONE), ("wechat_openid", "oGone")]) == {}
    assert not store.event_seen("wechat/oa", "p1") and not store.event_seen("pos/SH-001", "b1")
    assert [json.loads(d.value)["id"] for d in store.dead_letters()] == ["bad2"]
    assert store.record(customer_of_phone("+8613600000002")) is not None
    [announced] = [decode(m.value) for m in published if isinstance(decode(m.value), CustomerErased)]
    assert (announced.erasure_id, announced.customer_id, announced.records) == (erasure_id, gone, [gone])
    assert privacy.erasure_status(erasure_id, deps=deps)["services"] == {
        "identity": "done", "loyalty": "pending", "alerts": "pending", "campaigns": "pending"}

    # The same events again, as a replay from offset 0 delivers them.
    again = messages.consume(incoming(_batch(), first_offset=100), deps=deps)
    assert again.counts["erased"] == 3  # the profile, the purchase and the would-be dead letter
    assert (again.processed, again.duplicates, again.dead_lettered) == (0, 1, 0)  # bad2 is known already
    assert store.record(gone) is None and store.find([("phone", PHONE)]) == {}
    assert [json.loads(d.value)["id"] for d in store.dead_letters()] == ["bad2"]
    # A new event with one erased identifier only (the openid) is dropped too.
    later = messages.consume(incoming([event("v9", {"wechat_openid": "oGone"}, source="wechat/oa")]), deps=deps)
    assert later.counts["erased"] == 1 and store.find([("wechat_openid", "oGone")]) == {}

    # A view part published before that service erased its own part is not kept.
    part = ViewPartUpdated(customer_id=gone, part="loyalty", value={"points_balance": 100, "tier": None},
                           version=part_version(next_part_version(0)))
    late = messages.consume(incoming([encode(part)], topic="crm.loyalty.events"), deps=deps)
    assert late.counts["erased"] == 1 and store.parts([gone]) == {}

    # Confirmations from the other services, again and again, until done.
    for service in ("loyalty", "alerts", "campaigns", "loyalty"):
        body = ErasureConfirmed(erasure_id=erasure_id, service=service, at=deps.clock())
        messages.consume(incoming([encode(body)], topic=f"crm.{service}.events"), deps=deps)
    assert privacy.erasure_status(erasure_id, deps=deps)["status"] == "done"


def test_the_export_reaches_each_service_at_its_configured_url_or_on_this_host():
    from services.identity.config import IdentityConfig

    config = IdentityConfig(_env_file=None, peer_urls="loyalty=http://loyalty:8002/, alerts = http://a.svc:9")
    assert (config.peer_url("loyalty"), config.peer_url("alerts"), config.peer_url("campaigns")) == (
        "http://loyalty:8002", "http://a.svc:9", None)
