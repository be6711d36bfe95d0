"""The webhook store in the host service's SQLite database (its own tables, the host's transactions)."""

from __future__ import annotations

import json

from shared.storage.base import SqliteDb, chunks, in_placeholders
from shared.storage.crypto import KeyRing
from shared.webhooks.events import AlertSeen
from shared.webhooks.sealing import needs_sealing, open_secret, seal_secret
from shared.webhooks.store import Delivery, Subscription

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS webhook_subscriptions (
      webhook_id TEXT PRIMARY KEY, url TEXT NOT NULL, event_types TEXT NOT NULL, secret TEXT NOT NULL,
      enabled INTEGER NOT NULL, description TEXT, created_by TEXT NOT NULL, created_at TEXT NOT NULL,
      updated_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS webhook_deliveries (
      delivery_id TEXT PRIMARY KEY, webhook_id TEXT NOT NULL, event_id TEXT NOT NULL, event_type TEXT NOT NULL,
      body TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL, attempts INTEGER NOT NULL,
      next_ms INTEGER NOT NULL, lease_ms INTEGER NOT NULL, last_status INTEGER, last_error TEXT,
      dead_reason TEXT, updated_at TEXT, seq INTEGER NOT NULL, customer_id TEXT,
      UNIQUE (webhook_id, event_id))""",
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (status, next_ms)",
    "CREATE INDEX IF NOT EXISTS webhook_deliveries_list ON webhook_deliveries (webhook_id, seq)",
    """CREATE TABLE IF NOT EXISTS webhook_alerts_seen (
      alert_id TEXT PRIMARY KEY, status TEXT NOT NULL, severity TEXT NOT NULL, customer_id TEXT) WITHOUT ROWID""",
]

# Made after the columns an older table lacks are added (an index on a missing column fails).
INDEXES = ["CREATE INDEX IF NOT EXISTS webhook_deliveries_customer ON webhook_deliveries (customer_id)",
           "CREATE INDEX IF NOT EXISTS webhook_alerts_seen_customer ON webhook_alerts_seen (customer_id)"]

_DELIVERY_COLS = ("delivery_id, webhook_id, event_id, event_type, body, status, created_at, attempts, next_ms, "
                  "lease_ms, last_status, last_error, dead_reason, updated_at, customer_id")


def _delivery(row) -> Delivery:
    return Delivery(*row)


class SqliteWebhookStore:
    """Webhook tables beside the host's, written through the host's connection (so in its transactions);
    signing secrets sealed under the host's keyring ``keys``."""

    def __init__(self, db: SqliteDb, *, keys: KeyRing) -> None:
        self.db, self.keys = db, keys
        # The tables are made here, outside any transaction: made inside one, a rollback would take them back.
        with db.transaction() as conn:
            for statement in SCHEMA:
                conn.execute(statement)
            sealed = _upgrade(conn, keys)
            for statement in INDEXES:
                conn.execute(statement)
        if sealed:
            # The clear secrets' old copies are in the write-ahead log until it is emptied (the file's own are
            # zeroed: secure_delete); a reader holding the log keeps them until the next erasure's scrub.
            db.conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _sub(self, row) -> Subscription:
        return Subscription(row[0], row[1], tuple(json.loads(row[2])), open_secret(self.keys, row[0], row[3]),
                            bool(row[4]), row[5], row[6], row[7], row[8])

    def _conn(self):
        return self.db.conn()

    def subscription_add(self, sub: Subscription) -> None:
        """Keep a new subscription."""
        with self.db.transaction():
            self._conn().execute("INSERT INTO webhook_subscriptions VALUES (?,?,?,?,?,?,?,?,?)", (
                sub.webhook_id, sub.url, json.dumps(list(sub.event_types)),
                seal_secret(self.keys, sub.webhook_id, sub.secret), int(sub.enabled),
                sub.description, sub.created_by, sub.created_at, sub.updated_at))

    def subscription_put(self, sub: Subscription) -> None:
        """Replace a subscription."""
        with self.db.transaction():
            self._conn().execute(
                "UPDATE webhook_subscriptions SET url=?, event_types=?, enabled=?, description=?, updated_at=? "
                "WHERE webhook_id=?", (sub.url, json.dumps(list(sub.event_types)), int(sub.enabled),
                                       sub.description, sub.updated_at, sub.webhook_id))

    def subscription(self, webhook_id: str) -> Subscription | None:
        """One subscription."""
        row = self._conn().execute("SELECT * FROM webhook_subscriptions WHERE webhook_id=?", (webhook_id,)).fetchone()
        return self._sub(row) if row else None

    def subscriptions(self, *, enabled_only: bool = False) -> list[Subscription]:
        """Every subscription, oldest first."""
        where = "WHERE enabled=1" if enabled_only else ""
        rows = self._conn().execute(f"SELECT * FROM webhook_subscriptions {where} ORDER BY created_at, webhook_id")
        return [self._sub(r) for r in rows]

    def deliveries_add(self, deliveries: list[Delivery]) -> int:
        """Keep new deliveries; returns how many were new."""
        if not deliveries:
            return 0
        with self.db.transaction():
            conn = self._conn()
            before = conn.total_changes
            seq = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM webhook_deliveries").fetchone()[0]
            conn.executemany(
                f"INSERT OR IGNORE INTO webhook_deliveries ({_DELIVERY_COLS}, seq) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(d.delivery_id, d.webhook_id, d.event_id, d.event_type, d.body, d.status, d.created_at, d.attempts,
                  d.next_ms, d.lease_ms, d.last_status, d.last_error, d.dead_reason, d.updated_at, d.customer_id,
                  seq + i + 1)
                 for i, d in enumerate(deliveries)])
            return conn.total_changes - before

    def deliveries_due(self, *, now_ms: int, lease_ms: int, limit: int, webhook_ids: list[str]) -> list[Delivery]:
        """Take up to ``limit`` due pending deliveries of these subscriptions, leased until ``lease_ms``."""
        if not webhook_ids or limit <= 0:
            return []
        with self.db.transaction():
            conn = self._conn()
            rows = conn.execute(
                f"SELECT {_DELIVERY_COLS} FROM webhook_deliveries WHERE status='pending' AND next_ms<=? "
                f"AND lease_ms<=? AND webhook_id IN ({in_placeholders(webhook_ids)}) ORDER BY next_ms, seq LIMIT ?",
                (now_ms, now_ms, *webhook_ids, limit)).fetchall()
            conn.executemany("UPDATE webhook_deliveries SET lease_ms=? WHERE delivery_id=?",
                             [(lease_ms, r[0]) for r in rows])
        return [_delivery((*r[:9], lease_ms, *r[10:])) for r in rows]

    def delivery_update(self, delivery: Delivery) -> None:
        """Record an attempt's outcome."""
        d = delivery
        with self.db.transaction():
            self._conn().execute(
                "UPDATE webhook_deliveries SET status=?, attempts=?, next_ms=?, lease_ms=?, last_status=?, "
                "last_error=?, dead_reason=?, updated_at=? WHERE delivery_id=?",
                (d.status, d.attempts, d.next_ms, d.lease_ms, d.last_status, d.last_error, d.dead_reason,
                 d.updated_at, d.delivery_id))

    def delivery(self, delivery_id: str) -> Delivery | None:
        """One delivery."""
        row = self._conn().execute(f"SELECT {_DELIVERY_COLS} FROM webhook_deliveries WHERE delivery_id=?",
                                   (delivery_id,)).fetchone()
        return _delivery(row) if row else None

    def deliveries(self, webhook_id: str, *, status: str | None = None, offset: int = 0,
                   limit: int = 50) -> tuple[list[Delivery], int]:
        """A subscription's deliveries, newest first, and how many there are."""
        where, args = "webhook_id=?", [webhook_id]
        if status is not None:
            where, args = where + " AND status=?", [*args, status]
        conn = self._conn()
        total = conn.execute(f"SELECT COUNT(*) FROM webhook_deliveries WHERE {where}", args).fetchone()[0]
        rows = conn.execute(f"SELECT {_DELIVERY_COLS} FROM webhook_deliveries WHERE {where} "
                            "ORDER BY seq DESC LIMIT ? OFFSET ?", (*args, limit, offset)).fetchall()
        return [_delivery(r) for r in rows], total

    def customers_erase(self, customer_ids: list[str]) -> int:
        """Delete every delivery about these customer or record ids and their alerts seen (in the caller's
        transaction); returns how many deliveries."""
        ids = sorted(set(customer_ids))
        gone = 0
        with self.db.transaction() as conn:
            for part in chunks(ids, 500):
                marks = in_placeholders(part)
                gone += conn.execute(f"DELETE FROM webhook_deliveries WHERE customer_id IN ({marks})", part).rowcount
                conn.execute(f"DELETE FROM webhook_alerts_seen WHERE customer_id IN ({marks})", part)
        return gone

    def deliveries_purge(self, *, before: str) -> int:
        """Forget delivered and dead deliveries last tried before ``before``."""
        with self.db.transaction() as conn:
            return conn.execute("DELETE FROM webhook_deliveries WHERE status IN ('delivered', 'dead') "
                                "AND updated_at < ?", (before,)).rowcount

    def alerts_seen(self, alert_ids: list[str]) -> dict[str, AlertSeen]:
        """The last change seen of these alerts."""
        out: dict[str, AlertSeen] = {}
        for part in chunks(sorted(set(alert_ids)), 500):
            for row in self._conn().execute(
                    f"SELECT alert_id, status, severity, customer_id FROM webhook_alerts_seen WHERE alert_id IN "
                    f"({in_placeholders(part)})", part):
                out[row[0]] = AlertSeen(*row)
        return out

    def alerts_seen_put(self, *, seen: list[AlertSeen], forget: list[str]) -> None:
        """Keep the last change seen of alerts; forget resolved ones."""
        with self.db.transaction():
            conn = self._conn()
            conn.executemany("INSERT OR REPLACE INTO webhook_alerts_seen VALUES (?,?,?,?)",
                             [(s.alert_id, s.status, s.severity, s.customer_id) for s in seen])
            conn.executemany("DELETE FROM webhook_alerts_seen WHERE alert_id=?", [(a,) for a in forget])


def _upgrade(conn, keys: KeyRing) -> int:
    """Bring a database an older version wrote up to date, once: deliveries learn whom they are about (from
    their body, where every event names its customer) and clear signing secrets are sealed (how many)."""
    if "customer_id" not in {r[1] for r in conn.execute("PRAGMA table_info(webhook_deliveries)")}:
        conn.execute("ALTER TABLE webhook_deliveries ADD COLUMN customer_id TEXT")
        conn.execute("UPDATE webhook_deliveries SET customer_id = json_extract(body, '$.data.customer_id')")
    if "customer_id" not in {r[1] for r in conn.execute("PRAGMA table_info(webhook_alerts_seen)")}:
        # Alerts seen before this learn their customer at their next change (or go when they are resolved).
        conn.execute("ALTER TABLE webhook_alerts_seen ADD COLUMN customer_id TEXT")
    clear = [(w, s) for w, s in conn.execute("SELECT webhook_id, secret FROM webhook_subscriptions")
             if needs_sealing(s)]
    conn.executemany("UPDATE webhook_subscriptions SET secret=? WHERE webhook_id=?",
                     [(seal_secret(keys, w, s), w) for w, s in clear])
    return len(clear)
