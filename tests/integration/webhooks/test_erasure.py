"""Erasure (PIPL, issue 12) of a customer webhooks know about, through alerts' own erasure path: every
delivery about them (pending, delivered, dead; merged records too) is deleted in the transaction that erases
alerts' part, a pending one is never sent, and a late message about them records nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from services.alerts.store.mongo import MongoAlertsStore
from services.alerts.store.sqlite import SqliteAlertsStore
from shared.contract.messages import ErasureConfirmed, TierChanged, decode
from tests.integration.shared.backends import mongo_db
from tests.integration.webhooks.harness import AT, Host, alert, touch
from tests.integration.webhooks.receiver import Receiver, wait_for

SECRET = "whsec_test_0123456789abcdef"


@pytest.fixture(params=["sqlite", "mongomock"])
def host(request, tmp_path) -> Iterator[Host]:
    """An alerts service hosting webhooks over each kind of store."""
    if request.param == "sqlite":
        h = Host(tmp_path / "alerts.db")
        yield h
        h.stop()
        return
    with mongo_db("mongomock") as db:
        h = Host(tmp_path / "unused.db", store=MongoAlertsStore(db))
        yield h
        h.stop()


def _about(h: Host, webhook_id: str) -> list[tuple[str, str]]:
    """(customer, status) of every delivery the store keeps for a subscription, whatever its status."""
    items, _ = h.hooks.store.deliveries(webhook_id, limit=500)
    return sorted((json.loads(d.body)["data"]["customer_id"], d.status) for d in items)


def _tier(customer: str) -> TierChanged:
    return TierChanged(change_id=f"tc-{customer}", customer_id=customer, previous="A", tier="B",
                       direction="upgrade", reason="spent enough", at=AT)


def test_erasure_deletes_every_delivery_about_the_customer_and_none_is_sent(host):
    h = host
    with Receiver(secret=SECRET, codes=[400]) as rx:  # the first request is refused for good: a dead delivery
        wid = h.subscribe(rx.url, "campaign.touch", "tier.changed", secret=SECRET)
        h.start()
        h.feed(touch(1, customer_id="c_1"))
        wait_for(lambda: _about(h, wid) == [("c_1", "dead")], what="a dead delivery")
        h.feed(touch(2, customer_id="c_1"), touch(9))
        wait_for(lambda: _about(h, wid) == [("c_1", "dead"), ("c_1", "delivered"), ("c_9", "delivered")],
                 what="delivered ones")
        h.stop()
        # Pending while the dispatcher is away: one about the customer, one about a record merged into them.
        h.feed(touch(3, customer_id="c_1"), _tier("c_1m"))
        assert _about(h, wid) == [("c_1", "dead"), ("c_1", "delivered"), ("c_1", "pending"), ("c_1m", "pending"),
                                  ("c_9", "delivered")]

        outcome = h.erase("c_1", "c_1m")

        [confirmed] = [decode(m.value) for m in outcome.outbox]
        assert isinstance(confirmed, ErasureConfirmed) and confirmed.erasure_id == "er_c_1"
        assert _about(h, wid) == [("c_9", "delivered")]
        assert [d["status"] for d in h.deliveries(wid)] == ["delivered"]
        # The dispatcher back: the next delivery goes out, nothing about the erased customer ever does.
        h.start()
        h.feed(touch(10))
        wait_for(lambda: ("c_10", "delivered") in _about(h, wid), what="the next delivery")
    sent = [json.loads(r.body)["data"]["customer_id"] for r in rx.received]
    # The two about c_1 sent before the erasure (c_9's went alongside), then only others.
    assert sorted(sent[:3]) == ["c_1", "c_1", "c_9"] and sent[3:] == ["c_10"]


def test_a_late_message_about_an_erased_customer_records_nothing(host):
    h = host
    wid = h.subscribe("https://receiver.example/hooks", "campaign.touch", "tier.changed", secret=SECRET)
    h.feed(alert("al_1"))  # c_1's alert, seen (to tell an opening from an escalation later)
    assert set(h.hooks.store.alerts_seen(["al_1"])) == {"al_1"}
    h.erase("c_1", "c_1m")
    assert h.hooks.store.alerts_seen(["al_1"]) == {}  # forgotten with the customer
    outcome = h.feed(touch(4, customer_id="c_1"), _tier("c_1m"), touch(5), alert("al_1", severity="red"))
    assert (outcome.counts["erased"], outcome.counts["webhook_deliveries"]) == (3, 1)
    assert _about(h, wid) == [("c_5", "pending")]
    assert h.hooks.store.alerts_seen(["al_1"]) == {}
    # Replayed, the same late messages stay dropped.
    again = h.feed(touch(4, customer_id="c_1"), _tier("c_1m"))
    assert (again.counts["erased"], again.counts["webhook_deliveries"]) == (2, 0)
    assert _about(h, wid) == [("c_5", "pending")]


class _FailingErasure(SqliteAlertsStore):
    """An alerts store whose own erasure fails after the webhook deliveries were deleted in its transaction."""

    def erase_customer(self, customer_id, **kw):
        raise RuntimeError("the disk filled up mid-erasure")


def test_deliveries_stay_when_alerts_erasure_fails_in_the_same_transaction(tmp_path):
    h = Host(tmp_path / "alerts.db", store=_FailingErasure(tmp_path / "alerts.db"))
    wid = h.subscribe("https://receiver.example/hooks", "campaign.touch", secret=SECRET)
    h.feed(touch(1, customer_id="c_1"))
    outcome = h.erase("c_1")
    assert outcome.counts["erasures"] == 0 and not any(
        isinstance(decode(m.value), ErasureConfirmed) for m in outcome.outbox)
    assert _about(h, wid) == [("c_1", "pending")]  # rolled back with the erasure: retried whole, never half


def test_a_delivery_taken_for_sending_before_the_erasure_is_not_sent(host):
    """The dispatcher took it (leased) just before the erasure committed: it looks again before the request."""
    import asyncio

    import httpx

    h = host
    with Receiver(secret=SECRET) as rx:
        wid = h.subscribe(rx.url, "campaign.touch", secret=SECRET)
        h.feed(touch(1, customer_id="c_1"), touch(2))
        taken = h.hooks.store.deliveries_due(now_ms=2**40, lease_ms=2**41, limit=10, webhook_ids=[wid])
        assert len(taken) == 2
        h.erase("c_1")
        sub = h.hooks.store.subscription(wid)

        async def send_all() -> None:
            async with httpx.AsyncClient(trust_env=False) as client:
                for d in taken:
                    await h.hooks.dispatcher._deliver(client, d, sub)

        asyncio.run(send_all())
    assert [json.loads(r.body)["data"]["customer_id"] for r in rx.received] == ["c_2"]
    assert _about(h, wid) == [("c_2", "delivered")]
