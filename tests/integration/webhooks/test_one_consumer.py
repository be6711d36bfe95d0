"""Issue 13: alerts reads the topics of webhook events in its own batches, so loyalty's messages, which alerts
folds in and subscribers receive, are consumed and decoded once; a batch's facts and its deliveries share one
transaction, so every message's fate is one: kept with its delivery, or dead-lettered without one."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.alerts.store.sqlite import SqliteAlertsStore
from shared.contract import topics
from shared.contract.messages import CustomerErased, PointsExpiryAnnounced, TierChanged, encode
from shared.streaming.batch import Incoming
from tests.integration.webhooks.harness import AT, Host, alert, touch

SECRET = "whsec_test_0123456789abcdef"


class _RefusingExpiry(SqliteAlertsStore):
    """An alerts store that cannot keep one announcement (a defect of this version, not a passing outage)."""

    def add_expiries(self, rows):
        if any(r.key == "expiry|an-bad" for r in rows):
            raise RuntimeError("this announcement breaks the store")
        return super().add_expiries(rows)


@pytest.fixture
def host(tmp_path):
    made: list[Host] = []

    def make(store_class=SqliteAlertsStore) -> Host:
        h = Host(tmp_path / "alerts.db", store=store_class(tmp_path / "alerts.db"))
        h.service.faust_app()  # registers the agents, which declare what they consume
        made.append(h)
        return h

    yield make
    for h in made:
        h.stop()


def _expiry(n: str, customer: str) -> PointsExpiryAnnounced:
    return PointsExpiryAnnounced(announcement_id=n, customer_id=customer, points=300,
                                 expires_at=AT + timedelta(days=20), balance=900, at=AT)


def _upgrade(customer: str) -> TierChanged:
    return TierChanged(change_id=f"tc-{customer}", customer_id=customer, previous="A", tier="B",
                       direction="upgrade", reason="spent enough", at=AT)


def _batch(*messages, first: int = 1) -> list[Incoming]:
    topic = {TierChanged: topics.LOYALTY_EVENTS, PointsExpiryAnnounced: topics.LOYALTY_EVENTS}
    return [Incoming(encode(m), topic.get(type(m), topics.CAMPAIGN_TOUCHES), 0, first + i)
            for i, m in enumerate(messages)]


def _count(h: Host, table: str) -> int:
    return h.store.db.conn().execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_every_topic_alerts_reads_is_read_by_one_agent(host):
    h = host()
    read = [t for _, names, _ in h.service.runner.consumers for t in names]
    assert len(read) == len(set(read))  # loyalty's topic was read by two agents: every message twice
    assert {topics.LOYALTY_EVENTS, topics.ALERTS_EVENTS, topics.CAMPAIGN_TOUCHES, topics.CUSTOMER_EVENTS} <= set(read)


def test_a_loyalty_message_is_folded_and_delivered_in_one_batch_and_once_when_redelivered(host):
    h = host()
    wid = h.subscribe("https://receiver.example/hooks", "points.expiring", "tier.changed", "campaign.touch",
                      secret=SECRET)
    [(_, _, handle)] = h.service.runner.consumers
    batch = _batch(_expiry("an-1", "c_1"), _upgrade("c_2"), touch(3))

    first = h.service.runner.run_sync(handle, batch)

    assert (first.processed, first.duplicates, first.counts["webhook_deliveries"]) == (3, 0, 3)
    assert (_count(h, "expiries"), _count(h, "occurrences")) == (1, 1)  # alerts' own facts of the same messages
    assert sorted(d["event_type"] for d in h.deliveries(wid)) == ["campaign.touch", "points.expiring",
                                                                  "tier.changed"]
    # The same batch again (a crash before the offsets were committed): nothing kept or recorded twice.
    again = h.service.runner.run_sync(handle, batch)
    assert (again.duplicates, again.counts["webhook_deliveries"]) == (2, 0)
    assert (_count(h, "expiries"), _count(h, "occurrences"), len(h.deliveries(wid))) == (1, 1, 3)


def test_a_message_dead_lettered_records_no_delivery_and_the_others_land(host):
    h = host(_RefusingExpiry)
    wid = h.subscribe("https://receiver.example/hooks", "points.expiring", "tier.changed", secret=SECRET)
    [(_, _, handle)] = h.service.runner.consumers

    outcome = h.service.runner.run_sync(handle, _batch(_upgrade("c_2"), _expiry("an-bad", "c_1"),
                                                       _expiry("an-2", "c_3")))

    assert (outcome.processed, outcome.dead_lettered, outcome.counts["webhook_deliveries"]) == (2, 1, 2)
    [letter] = h.store.dead_letters()
    assert (letter.code, letter.value) == ("processing_error", encode(_expiry("an-bad", "c_1")))
    kept, _ = h.hooks.store.deliveries(wid)
    assert sorted((d.event_type, d.customer_id) for d in kept) == [("points.expiring", "c_3"), ("tier.changed", "c_2")]
    assert _count(h, "expiries") == 1


def test_an_erasure_in_the_batch_takes_the_deliveries_recorded_before_it_and_drops_those_after(host):
    h = host()
    wid = h.subscribe("https://receiver.example/hooks", "tier.changed", "campaign.touch", secret=SECRET)
    [(_, _, handle)] = h.service.runner.consumers
    erased = CustomerErased(erasure_id="er_c_1", customer_id="c_1", records=["c_1"], at=AT)
    batch = [*_batch(_upgrade("c_1"), touch(1), touch(2)),
             Incoming(encode(erased), topics.CUSTOMER_EVENTS, 1, 90), *_batch(touch(1, touch_id="t-late"), first=91)]

    outcome = h.service.runner.run_sync(handle, batch)

    assert (outcome.counts["erasures"], outcome.counts["erased"], outcome.counts["webhook_deliveries"]) == (1, 1, 3)
    kept, _ = h.hooks.store.deliveries(wid)
    assert [(d.event_type, d.customer_id) for d in kept] == [("campaign.touch", "c_2")]


def test_only_the_events_a_subscription_wants_are_delivered_and_alerts_are_followed_for_everyone(host):
    h = host()
    wid = h.subscribe("https://receiver.example/hooks", "campaign.touch", secret=SECRET)

    # Nobody wants tier changes or alert changes yet: none is delivered, but the alert opened here is seen.
    first = h.feed(_upgrade("c_2"), touch(5), alert("al_9", severity="yellow"))
    later = h.subscribe("https://receiver.example/alerts", "alert.opened", "alert.escalated", secret=SECRET)
    then = h.feed(alert("al_9", severity="red", at=AT + timedelta(hours=1)))

    assert (first.counts["webhook_deliveries"], then.counts["webhook_deliveries"]) == (1, 1)
    assert [d["event_type"] for d in h.deliveries(wid)] == ["campaign.touch"]
    # An escalation (the opening was seen before anyone subscribed), not an opening.
    assert [d["event_type"] for d in h.deliveries(later)] == ["alert.escalated"]
