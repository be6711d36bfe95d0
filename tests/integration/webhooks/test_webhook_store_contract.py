"""The webhook store contract, for every backend: SQLite, mongomock, a real MongoDB when one is configured."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from shared.storage.base import MongoDb, SqliteDb
from shared.storage.crypto import is_sealed, mongo_keyring, sqlite_keyring
from shared.webhooks import signing
from shared.webhooks.events import AlertSeen
from shared.webhooks.mongo import MongoWebhookStore
from shared.webhooks.sqlite import SqliteWebhookStore
from shared.webhooks.store import Delivery, Subscription
from tests.integration.shared.backends import BACKENDS, TRANSACTIONAL, mongo_db, sqlite_file

MASTER = b"0123456789abcdef0123456789abcdef"


def _open(kind: str, db):
    """A webhook store over a database, as a service (re)started on it opens one."""
    if kind == "sqlite":
        return SqliteWebhookStore(db, keys=sqlite_keyring(db.path, MASTER))
    return MongoWebhookStore(db, keys=mongo_keyring(db, MASTER))


def _restarted(kind: str, db):
    """The same database opened afresh (new connections, a new keyring, nothing cached)."""
    if kind == "sqlite":
        return SqliteDb(db.path, "")
    return MongoDb(db.database)


def _fresh(kind: str, tmp_path):
    """(kind, a fresh webhook store, its database), closed afterwards."""
    if kind == "sqlite":
        db = SqliteDb(sqlite_file(tmp_path, "hooks"), "")
        yield kind, _open("sqlite", db), db
        db.close()
        return
    with mongo_db(kind) as db:
        yield kind, _open(kind, db), db


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    """(kind, a fresh webhook store, its database)."""
    yield from _fresh(request.param, tmp_path)


@pytest.fixture(params=TRANSACTIONAL)
def transactional(request, tmp_path):
    """The same, on the backends whose transactions roll back (mongomock has none)."""
    yield from _fresh(request.param, tmp_path)


def _sub(n: int, *, enabled: bool = True, types=("campaign.touch",)) -> Subscription:
    return Subscription(f"wh_{n}", f"https://e.com/{n}", tuple(types), f"secret-{n}", enabled, None, "admin",
                        f"2026-11-20T00:00:0{n}.000000Z", f"2026-11-20T00:00:0{n}.000000Z")


def _delivery(n: int, *, webhook: str = "wh_1", event: str | None = None, next_ms: int = 0,
              customer: str | None = None) -> Delivery:
    return Delivery(f"dl_{n}", webhook, event or f"evt_{n}", "campaign.touch", f'{{"n":{n}}}', "pending",
                    f"2026-11-20T00:00:{n:02d}.000000Z", next_ms=next_ms, customer_id=customer)


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


def test_deliveries_roll_back_with_the_transaction(transactional):
    _, store, db = transactional
    with pytest.raises(RuntimeError), db.transaction():
        store.deliveries_add([_delivery(1)])
        raise RuntimeError("the batch failed")
    assert store.deliveries("wh_1") == ([], 0)


# -- erasure (PIPL): deliveries about an erased customer go -----------------------------------------------


def test_erase_deletes_every_delivery_about_the_customers_in_the_callers_transaction(backend):
    kind, store, db = backend
    store.deliveries_add([_delivery(1, customer="c_g"), _delivery(2, customer="c_g2"),
                          _delivery(3, customer="c_g"), _delivery(4, customer="c_k"),
                          _delivery(5, webhook="wh_2", customer="c_g"), _delivery(6)])
    store.delivery_update(replace(_delivery(1, customer="c_g"), status="delivered", attempts=1, updated_at="t1"))
    store.delivery_update(replace(_delivery(2, customer="c_g2"), status="dead", attempts=8, updated_at="t2"))
    store.alerts_seen_put(seen=[AlertSeen("al_g", "open", "red", "c_g2"), AlertSeen("al_k", "open", "red", "c_k")],
                          forget=[])
    if kind in TRANSACTIONAL:  # an erasure that fails takes its deletions back with it
        with pytest.raises(RuntimeError), db.transaction():
            store.customers_erase(["c_g", "c_g2"])
            raise RuntimeError("the erasure failed")
        assert store.deliveries("wh_1")[1] == 5
    with db.transaction():
        assert store.customers_erase(["c_g", "c_g2", "c_g"]) == 4  # pending, delivered and dead alike
    assert sorted(d.delivery_id for d in store.deliveries("wh_1")[0]) == ["dl_4", "dl_6"]
    assert store.deliveries("wh_2") == ([], 0)
    assert store.delivery("dl_3") is None
    # A pending one erased is never taken for sending.
    due = store.deliveries_due(now_ms=10**12, lease_ms=10**12 + 1, limit=10, webhook_ids=["wh_1", "wh_2"])
    assert sorted(d.delivery_id for d in due) == ["dl_4", "dl_6"]
    assert store.delivery("dl_4").customer_id == "c_k"
    # The alert changes seen of their alerts go too (an alert id derives from its customer's id).
    assert store.alerts_seen(["al_g", "al_k"]) == {"al_k": AlertSeen("al_k", "open", "red", "c_k")}
    assert store.customers_erase([]) == 0 and store.customers_erase(["c_nobody"]) == 0


# -- signing secrets at rest ---------------------------------------------------------------------------


def _stored_secret(kind: str, db, webhook_id: str) -> str:
    if kind == "sqlite":
        return db.conn().execute("SELECT secret FROM webhook_subscriptions WHERE webhook_id=?",
                                 (webhook_id,)).fetchone()[0]
    return db.database["webhook_subscriptions"].find_one({"_id": webhook_id})["secret"]


def _raw_bytes(kind: str, db) -> bytes:
    """Everything the database keeps of the subscriptions, as stored."""
    if kind == "sqlite":
        db.conn().execute("PRAGMA wal_checkpoint(FULL)")
        files = [db.path, db.path.with_name(db.path.name + "-wal")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    return repr(list(db.database["webhook_subscriptions"].find())).encode()


def test_secrets_are_sealed_at_rest_and_still_sign_after_a_restart(backend):
    kind, store, db = backend
    secret = "whsec_" + "5ecret" * 6
    store.subscription_add(replace(_sub(1), secret=secret))
    store.subscription_put(replace(_sub(1), url="https://e.com/moved", updated_at="later"))
    stored = _stored_secret(kind, db, "wh_1")
    assert is_sealed(stored) and secret not in stored
    assert secret.encode() not in _raw_bytes(kind, db)
    assert store.subscription("wh_1").secret == secret

    again = _open(kind, _restarted(kind, db))
    [sub] = again.subscriptions()
    assert (sub.secret, sub.url) == (secret, "https://e.com/moved")
    body = b'{"id":"evt_1"}'
    assert signing.verify(secret, body, signing.sign(sub.secret, body))
    # A sealed secret copied onto another subscription does not open there.
    store.subscription_add(_sub(2))
    if kind == "sqlite":
        db.conn().execute("UPDATE webhook_subscriptions SET secret=? WHERE webhook_id='wh_2'", (stored,))
    else:
        db.database["webhook_subscriptions"].update_one({"_id": "wh_2"}, {"$set": {"secret": stored}})
    with pytest.raises(ValueError):
        again.subscription("wh_2")


_OLD_SQLITE = [  # the tables as the first version of webhooks made them: secrets in clear, no customer column
    """CREATE TABLE webhook_subscriptions (
      webhook_id TEXT PRIMARY KEY, url TEXT NOT NULL, event_types TEXT NOT NULL, secret TEXT NOT NULL,
      enabled INTEGER NOT NULL, description TEXT, created_by TEXT NOT NULL, created_at TEXT NOT NULL,
      updated_at TEXT NOT NULL)""",
    """CREATE TABLE webhook_deliveries (
      delivery_id TEXT PRIMARY KEY, webhook_id TEXT NOT NULL, event_id TEXT NOT NULL, event_type TEXT NOT NULL,
      body TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL, attempts INTEGER NOT NULL,
      next_ms INTEGER NOT NULL, lease_ms INTEGER NOT NULL, last_status INTEGER, last_error TEXT,
      dead_reason TEXT, updated_at TEXT, seq INTEGER NOT NULL,
      UNIQUE (webhook_id, event_id))""",
    """CREATE TABLE webhook_alerts_seen (
      alert_id TEXT PRIMARY KEY, status TEXT NOT NULL, severity TEXT NOT NULL) WITHOUT ROWID""",
    "INSERT INTO webhook_alerts_seen VALUES ('al_old', 'open', 'red')",
]


def _old_body(customer: str) -> str:
    return json.dumps({"id": "evt", "type": "campaign.touch", "time": "2026-11-20T00:00:00+00:00",
                       "data": {"touch_id": "t", "customer_id": customer}})


def test_an_older_database_keeps_working_its_secrets_sealed_once(kind_and_old_db):
    kind, db = kind_and_old_db
    store = _open(kind, db)
    assert store.subscription("wh_old").secret == "clear-secret-of-old"
    stored = _stored_secret(kind, db, "wh_old")
    assert is_sealed(stored) and b"clear-secret-of-old" not in _raw_bytes(kind, db)
    assert _open(kind, _restarted(kind, db)).subscription("wh_old").secret == "clear-secret-of-old"
    assert _stored_secret(kind, db, "wh_old") == stored  # sealed once, not again at each start
    # Deliveries kept before they named their customer are erased by it all the same.
    with db.transaction():
        assert store.customers_erase(["c_old"]) == 1
    assert [d.delivery_id for d in store.deliveries("wh_old")[0]] == ["dl_kept"]
    assert store.alerts_seen(["al_old"]) == {"al_old": AlertSeen("al_old", "open", "red")}


@pytest.fixture(params=BACKENDS)
def kind_and_old_db(request, tmp_path):
    """A database the first version of webhooks wrote: a clear secret, deliveries without a customer column."""
    sub = ("wh_old", "https://e.com/old", '["campaign.touch"]', "clear-secret-of-old", 1, None, "admin",
           "2026-11-01T00:00:00.000000Z", "2026-11-01T00:00:00.000000Z")
    rows = [("dl_gone", "wh_old", "evt_1", "campaign.touch", _old_body("c_old"), "delivered", "t", 1, 0, 0, 200,
             None, None, "t", 1),
            ("dl_kept", "wh_old", "evt_2", "campaign.touch", _old_body("c_other"), "pending", "t", 0, 0, 0, None,
             None, None, None, 2)]
    if request.param == "sqlite":
        db = SqliteDb(sqlite_file(tmp_path, "hooks"), "")
        with db.transaction() as conn:
            for statement in _OLD_SQLITE:
                conn.execute(statement)
            conn.execute("INSERT INTO webhook_subscriptions VALUES (?,?,?,?,?,?,?,?,?)", sub)
            conn.executemany("INSERT INTO webhook_deliveries VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        yield request.param, db
        db.close()
        return
    with mongo_db(request.param) as db:
        raw = db.database
        raw["webhook_subscriptions"].insert_one(dict(zip(
            ("_id", "url", "event_types", "secret", "enabled", "description", "created_by", "created_at",
             "updated_at"), (*sub[:2], ["campaign.touch"], sub[3], True, *sub[5:]), strict=True)))
        raw["webhook_alerts_seen"].insert_one({"_id": "al_old", "status": "open", "severity": "red"})
        raw["webhook_deliveries"].insert_many([dict(zip(
            ("_id", "webhook_id", "event_id", "event_type", "body", "status", "created_at", "attempts", "next_ms",
             "lease_ms", "last_status", "last_error", "dead_reason", "updated_at", "seq"), r, strict=True))
            for r in rows])
        yield request.param, db
