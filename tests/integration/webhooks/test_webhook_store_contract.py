"""The webhook store contract, for every backend: SQLite, mongomock, a real MongoDB when one is configured."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shared.storage.base import SqliteDb
from shared.webhooks.events import AlertSeen
from shared.webhooks.mongo import MongoWebhookStore
from shared.webhooks.sqlite import SqliteWebhookStore
from shared.webhooks.store import Delivery, Subscription
from tests.integration.shared.backends import BACKENDS, TRANSACTIONAL, mongo_db, sqlite_file


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    """(kind, a fresh webhook store, its database)."""
    if request.param == "sqlite":
        db = SqliteDb(sqlite_file(tmp_path, "hooks"), "")
        yield request.param, SqliteWebhookStore(db), db
        db.close()
        return
    with mongo_db(request.param) as db:
        yield request.param, MongoWebhookStore(db), db


def _sub(n: int, *, enabled: bool = True, types=("campaign.touch",)) -> Subscription:
    return Subscription(f"wh_{n}", f"https://e.com/{n}", tuple(types), f"secret-{n}", enabled, None, "admin",
                        f"2026-11-20T00:00:0{n}.000000Z", f"2026-11-20T00:00:0{n}.000000Z")


def _delivery(n: int, *, webhook: str = "wh_1", event: str | None = None, next_ms: int = 0) -> Delivery:
    return Delivery(f"dl_{n}", webhook, event or f"evt_{n}", "campaign.touch", f'{{"n":{n}}}', "pending",
                    f"2026-11-20T00:00:{n:02d}.000000Z", next_ms=next_ms)


def test_subscriptions(backend):
    _, store, _ = backend
    store.subscription_add(_sub(2))
    store.subscription_add(_sub(1, types=("alert.opened", "tier.changed")))
    assert store.subscription("wh_1") == _sub(1, types=("alert.opened", "tier.changed"))
    assert store.subscription("wh_9") is None
    assert [s.webhook_id for s in store.subscriptions()] == ["wh_1", "wh_2"]
    store.subscription_put(replace(_sub(2), enabled=False, url="https://e.com/new", updated_at="later"))
    assert [s.webhook_id for s in store.subscriptions(enabled_only=True)] == ["wh_1"]
    changed = store.subscription("wh_2")
    assert (changed.url, changed.enabled, changed.updated_at, changed.secret) == (
        "https://e.com/new", False, "later", "secret-2")


def test_deliveries_are_kept_once_per_subscription_and_event(backend):
    _, store, _ = backend
    assert store.deliveries_add([_delivery(1), _delivery(2)]) == 2
    assert store.deliveries_add([_delivery(3, event="evt_1"), _delivery(4, webhook="wh_2", event="evt_1")]) == 1
    items, total = store.deliveries("wh_1")
    assert total == 2 and [d.delivery_id for d in items] == ["dl_2", "dl_1"]  # newest first
    assert store.delivery("dl_1") == _delivery(1)
    assert store.delivery("dl_3") is None


def test_due_deliveries_are_leased(backend):
    _, store, _ = backend
    store.deliveries_add([_delivery(1, next_ms=100), _delivery(2, next_ms=50), _delivery(3, next_ms=500),
                          _delivery(4, webhook="wh_2")])
    taken = store.deliveries_due(now_ms=200, lease_ms=1000, limit=10, webhook_ids=["wh_1"])
    assert [(d.delivery_id, d.lease_ms) for d in taken] == [("dl_2", 1000), ("dl_1", 1000)]
    # Leased: nobody else takes them until the lease lapses.
    assert store.deliveries_due(now_ms=300, lease_ms=2000, limit=10, webhook_ids=["wh_1"]) == []
    assert [d.delivery_id for d in store.deliveries_due(now_ms=1000, lease_ms=2000, limit=1,
                                                         webhook_ids=["wh_1", "wh_2"])] == ["dl_4"]
    assert store.deliveries_due(now_ms=1000, lease_ms=2000, limit=10, webhook_ids=[]) == []


def test_attempts_are_recorded(backend):
    _, store, _ = backend
    store.deliveries_add([_delivery(1), _delivery(2)])
    store.deliveries_due(now_ms=0, lease_ms=99, limit=10, webhook_ids=["wh_1"])
    dead = replace(_delivery(1), status="dead", attempts=8, last_status=503, last_error="HTTP 503",
                   dead_reason="gave up", updated_at="t1")
    store.delivery_update(dead)
    store.delivery_update(replace(_delivery(2), status="delivered", attempts=1, last_status=204, updated_at="t2"))
    assert store.delivery("dl_1") == dead
    assert [d.delivery_id for d in store.deliveries("wh_1", status="dead")[0]] == ["dl_1"]
    assert store.deliveries("wh_1", status="pending") == ([], 0)
    assert store.deliveries_due(now_ms=10**12, lease_ms=10**12, limit=10, webhook_ids=["wh_1"]) == []
    items, total = store.deliveries("wh_1", offset=1, limit=1)
    assert total == 2 and [d.delivery_id for d in items] == ["dl_1"]


def test_purge_forgets_old_finished_deliveries_only(backend):
    _, store, _ = backend
    store.deliveries_add([_delivery(n) for n in (1, 2, 3, 4)])
    store.delivery_update(replace(_delivery(1), status="delivered", attempts=1, updated_at="2026-10-01T00:00:00Z"))
    store.delivery_update(replace(_delivery(2), status="dead", attempts=8, updated_at="2026-10-02T00:00:00Z"))
    store.delivery_update(replace(_delivery(3), status="delivered", attempts=1, updated_at="2026-11-02T00:00:00Z"))
    store.delivery_update(replace(_delivery(4), attempts=3, updated_at="2026-10-01T00:00:00Z"))  # still pending
    assert store.deliveries_purge(before="2026-11-01T00:00:00Z") == 2
    assert sorted(d.delivery_id for d in store.deliveries("wh_1")[0]) == ["dl_3", "dl_4"]


def test_alerts_seen(backend):
    _, store, _ = backend
    store.alerts_seen_put(seen=[AlertSeen("al_1", "open", "yellow"), AlertSeen("al_2", "open", "red")], forget=[])
    store.alerts_seen_put(seen=[AlertSeen("al_1", "acknowledged", "red")], forget=["al_2"])
    assert store.alerts_seen(["al_1", "al_2", "al_3"]) == {"al_1": AlertSeen("al_1", "acknowledged", "red")}


def test_deliveries_roll_back_with_the_transaction(backend):
    kind, store, db = backend
    if kind not in TRANSACTIONAL:
        pytest.skip("mongomock has no transactions")
    with pytest.raises(RuntimeError), db.transaction():
        store.deliveries_add([_delivery(1)])
        raise RuntimeError("the batch failed")
    assert store.deliveries("wh_1") == ([], 0)
