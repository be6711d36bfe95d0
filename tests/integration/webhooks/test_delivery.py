"""Webhook deliveries against a receiver on loopback: signed, retried with backoff, dead-lettered after the last
try, redelivered by hand, surviving a restart, and never slowing consumption when the receiver hangs."""

from __future__ import annotations

import time

import pytest

from tests.integration.webhooks.harness import Host, alert, touch
from tests.integration.webhooks.receiver import Receiver, wait_for

SECRET = "whsec_test_0123456789abcdef"


@pytest.fixture
def host(tmp_path):
    hosts: list[Host] = []

    def make(**config) -> Host:
        h = Host(tmp_path / "alerts.db", **config)
        hosts.append(h)
        return h

    yield make
    for h in hosts:
        h.stop()


def _status(h: Host, webhook_id: str, status: str, n: int = 1):
    return lambda: (items := h.deliveries(webhook_id, status=status)) and len(items) >= n and items


def test_signature_verifiable_by_receiver(host):
    with Receiver(secret=SECRET) as rx:
        h = host().start()
        wid = h.subscribe(rx.url, "campaign.touch", secret=SECRET)
        h.feed(touch(1, offer={"code": "SPRING", "note": "call 13800138000"}))
        [d] = wait_for(_status(h, wid, "delivered"), what="delivered")
    [got] = rx.received
    assert got.verified
    body = got.json()
    assert set(body) == {"id", "type", "time", "data"}
    assert body["type"] == "campaign.touch" and body["id"] == d["event_id"] == got.headers["CRM-Event-Id"]
    assert body["time"] == "2026-11-20T02:15:00+00:00"
    assert body["data"]["touch_id"] == "t-1" and body["data"]["customer_id"] == "c_1"
    assert "13800138000" not in got.body.decode()  # free text masked as a reader sees it
    assert got.headers["CRM-Event-Type"] == "campaign.touch" and got.headers["CRM-Delivery-Attempt"] == "1"
    assert (d["status"], d["attempts"], d["last_status_code"], d["last_error"]) == ("delivered", 1, 200, None)
    # Another secret does not verify the same request: the receiver would refuse a forgery.
    from tests.integration.webhooks.receiver import verify
    assert not verify("whsec_another_secret_000", got.body, got.headers["CRM-Signature"])
    assert not verify(SECRET, got.body + b" ", got.headers["CRM-Signature"])


def test_retries_after_500s_then_success_with_growing_waits(host):
    with Receiver(secret=SECRET, codes=[500, 502, 429]) as rx:
        h = host(backoff_s=0.3, max_attempts=5).start()
        wid = h.subscribe(rx.url, "alert.opened", secret=SECRET)
        h.feed(alert("al_1"))
        [d] = wait_for(_status(h, wid, "delivered"), what="delivered", timeout_s=15)
    assert (d["attempts"], d["last_status_code"]) == (4, 200)
    assert [r.headers["CRM-Delivery-Attempt"] for r in rx.received] == ["1", "2", "3", "4"]
    assert all(r.verified for r in rx.received)
    assert len({r.json()["id"] for r in rx.received}) == 1  # the same event each time
    gaps = [b.at - a.at for a, b in zip(rx.received, rx.received[1:], strict=False)]
    # tenacity's exponential wait: 0.3 s, 0.6 s, 1.2 s after the 1st, 2nd, 3rd failure.
    assert gaps[0] >= 0.3 and gaps[1] >= 0.6 and gaps[2] >= 1.2, gaps


def test_dead_lettered_after_the_last_try_then_redelivered(host):
    with Receiver(secret=SECRET, then=503) as rx:
        h = host(max_attempts=3).start()
        wid = h.subscribe(rx.url, "tier.changed", "campaign.touch", secret=SECRET)
        h.feed(touch(7))
        [d] = wait_for(_status(h, wid, "dead"), what="dead")
        assert (d["attempts"], d["last_status_code"], d["last_error"]) == (3, 503, "HTTP 503")
        assert d["dead_reason"] == "gave up after 3 attempts; last: HTTP 503"
        assert d["next_attempt_at"] is None and len(rx.received) == 3
        # Nothing more is tried for a dead delivery.
        time.sleep(0.3)
        assert len(rx.received) == 3
        rx.then = 200
        r = h.api.post(f"/v1/webhooks/{wid}/deliveries/{d['delivery_id']}/redeliver")
        assert r.status_code == 202 and r.json()["status"] == "pending" and r.json()["attempts"] == 0
        [again] = wait_for(_status(h, wid, "delivered"), what="redelivered")
    assert (again["delivery_id"], again["attempts"], again["last_status_code"]) == (d["delivery_id"], 1, 200)
    assert len(rx.received) == 4 and rx.received[-1].verified
    r = h.api.post(f"/v1/webhooks/{wid}/deliveries/{d['delivery_id']}/redeliver")
    assert r.status_code == 409 and r.json()["error"]["code"] == "delivery_not_dead"


def test_connection_refused_and_timeouts_are_retried(host):
    with Receiver(secret=SECRET, hang=True) as rx:
        h = host(timeout_s=0.3, max_attempts=2).start()
        wid = h.subscribe(rx.url, "campaign.touch", secret=SECRET)
        h.feed(touch(1))
        [d] = wait_for(_status(h, wid, "dead"), what="dead after timeouts")
    assert (d["attempts"], d["last_status_code"], d["last_error"]) == (2, None, "no answer within 0.3 s")
    h2 = host(max_attempts=2).start()
    wid2 = h2.subscribe("http://127.0.0.1:9/nothing-listens", "campaign.touch")
    h2.feed(touch(2))
    [d2] = wait_for(_status(h2, wid2, "dead"), what="dead after refused connections")
    assert d2["attempts"] == 2 and d2["last_error"] == "connection failed (ConnectError)"


def test_a_4xx_is_not_retried(host):
    with Receiver(secret=SECRET, then=404) as rx:
        h = host().start()
        wid = h.subscribe(rx.url, "campaign.touch", secret=SECRET)
        h.feed(touch(1))
        [d] = wait_for(_status(h, wid, "dead"), what="dead")
    assert (d["attempts"], d["dead_reason"], len(rx.received)) == (1, "HTTP 404 (not retried)", 1)


def test_a_hanging_receiver_does_not_slow_consumption(host):
    with Receiver(secret=SECRET, hang=True) as rx:
        h = host(timeout_s=60, concurrency=4).start()
        wid = h.subscribe(rx.url, "campaign.touch", "alert.opened", secret=SECRET)
        h.feed(touch(0))
        wait_for(lambda: rx.in_flight >= 1, what="the receiver holding a request")
        started = time.monotonic()
        for b in range(20):
            outcome = h.feed(*[touch(1 + b * 100 + i) for i in range(100)])
            assert outcome.processed == 100
        took = time.monotonic() - started
        wait_for(lambda: rx.in_flight == 4, what="the receiver holding as many requests as the dispatcher sends")
        # 2,000 events consumed while every request the dispatcher sent hangs: well inside one request's timeout
        # (a consumer that sent them itself would still be waiting on the first of them).
        assert took < 10, took
        assert rx.answered == 0 and rx.in_flight == 4
        pending = h.deliveries(wid, status="pending", limit=1)
        assert len(pending) == 1
        r = h.api.get(f"/v1/webhooks/{wid}/deliveries", params={"status": "pending"})
        assert r.json()["total"] == 2001


def test_deliveries_survive_a_restart(host, tmp_path):
    with Receiver(secret=SECRET, codes=[500]) as rx:
        # The retry is due 3 s after the failed try: the first process stops well before it, even when a loaded
        # machine is slow to notice the failure (at 0.5 s, CI once saw the first process deliver the retry).
        first = host(backoff_s=3.0, max_attempts=5).start()
        wid = first.subscribe(rx.url, "campaign.touch", secret=SECRET)
        first.feed(touch(1))
        wait_for(lambda: first.deliveries(wid)[0]["attempts"] == 1, what="a failed first try")
        first.stop()
        first.feed(touch(2))  # recorded while no dispatcher runs
        assert [d["status"] for d in first.deliveries(wid)] == ["pending", "pending"]
        second = host(backoff_s=3.0, max_attempts=5).start()  # a new process over the same database
        done = wait_for(_status(second, wid, "delivered", 2), timeout_s=20, what="both delivered after the restart")
    assert sorted(d["attempts"] for d in done) == [1, 2]  # the first kept its failed try across the restart
    assert sorted(r.json()["data"]["touch_id"] for r in rx.received) == ["t-1", "t-1", "t-2"]


def test_a_message_consumed_twice_is_delivered_once(host):
    with Receiver(secret=SECRET) as rx:
        h = host()
        wid = h.subscribe(rx.url, "campaign.touch", secret=SECRET)
        assert h.feed(touch(1)).counts["webhook_deliveries"] == 1
        assert h.feed(touch(1)).counts["webhook_deliveries"] == 0  # a redelivered batch after a crash
        h.start()
        wait_for(_status(h, wid, "delivered"), what="delivered")
        time.sleep(0.2)
    assert len(rx.received) == 1


def test_only_subscribed_types_of_enabled_subscriptions_are_recorded(host):
    h = host()
    alerts_only = h.subscribe("http://127.0.0.1:9/a", "alert.opened")
    touches = h.subscribe("http://127.0.0.1:9/t", "campaign.touch")
    r = h.api.delete(f"/v1/webhooks/{touches}")
    assert r.status_code == 200 and r.json()["enabled"] is False
    h.feed(touch(1), alert("al_9"))
    assert [d["event_type"] for d in h.deliveries(alerts_only)] == ["alert.opened"]
    assert h.deliveries(touches) == []


def test_a_private_address_is_refused_again_before_sending(host):
    with Receiver(secret=SECRET) as rx:
        open_host = host()
        wid = open_host.subscribe(rx.url, "campaign.touch", secret=SECRET)  # accepted while the guard was off
        guarded = host(block_private=True).start()
        guarded.feed(touch(1))
        [d] = wait_for(_status(guarded, wid, "dead"), what="refused before sending")
    assert d["attempts"] == 1 and rx.received == []
    assert d["dead_reason"] == "URL refused: the URL's host is a loopback, private, link-local or reserved address"


def test_finished_deliveries_are_forgotten_after_keep_days(host):
    from shared.webhooks.dispatch import Dispatcher

    with Receiver(secret=SECRET) as rx:
        h = host(keep_days=30).start()
        wid = h.subscribe(rx.url, "campaign.touch", secret=SECRET)
        h.feed(touch(1))
        wait_for(_status(h, wid, "delivered"), what="delivered")
    h.stop()
    h.feed(touch(2))  # pending: kept whatever its age
    day = 86400
    assert Dispatcher(h.hooks.store, h.hooks.config, now=lambda: time.time() + 29 * day).purge() == 0
    assert Dispatcher(h.hooks.store, h.hooks.config, now=lambda: time.time() + 31 * day).purge() == 1
    assert [d["status"] for d in h.deliveries(wid)] == ["pending"]
