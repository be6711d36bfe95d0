"""Leases on outbox rows, so a large outbox relayed chunk by chunk is never also sent by the sweeper.

A launch over 100,000 customers writes about 250,000 outbox rows and relays them after it commits,
which takes longer than the 15 s after which the shared sweeper treats a row as left behind by a
crashed worker. The launch leases its rows in the transaction that writes them; the relay renews
the lease before every chunk and releases it at the end; the sweeper reads only rows outside live
leases. If the relaying process dies, its lease runs out and the sweeper sends what is left.

Lease times are wall-clock milliseconds, like the outbox's own ``created_ms``: they order work
between processes, not business events, so they do not follow the service's (settable) clock.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

from shared.storage.base import OutboxMessage
from shared.storage.outbox import _h_load

LEASES_SQL = """
CREATE TABLE IF NOT EXISTS outbox_leases (
  id TEXT PRIMARY KEY, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, until_ms INTEGER NOT NULL
) WITHOUT ROWID;
"""


def gaps(leased: Iterable[tuple[int, int]]) -> list[tuple[int | None, int | None]]:
    """The open intervals of sequence numbers between leased ranges (``None``: unbounded on that side)."""
    out: list[tuple[int | None, int | None]] = []
    low: int | None = None
    for first, last in sorted(leased):
        if low is None or first > low + 1:
            out.append((low, first))
        low = last if low is None else max(low, last)
    out.append((low, None))
    return out


def _now_ms() -> int:
    return int(time.time() * 1000)


class SqliteLeases:
    """Outbox leases in the service's SQLite file (needs ``self.db``; schema :data:`LEASES_SQL`)."""

    db: object

    def outbox_lease(self, messages: list[OutboxMessage], *, until_ms: int) -> str | None:
        """Lease outbox rows just added (inside their transaction) to the relay that will send them."""
        seqs = [m.seq for m in messages if m.seq is not None]
        if not seqs:
            return None
        lease_id = uuid.uuid4().hex
        with self.db.transaction() as c:  # type: ignore[attr-defined]
            c.execute("DELETE FROM outbox_leases WHERE until_ms <= ?", (_now_ms(),))
            c.execute("INSERT INTO outbox_leases VALUES (?,?,?,?)", (lease_id, min(seqs), max(seqs), until_ms))
        return lease_id

    def outbox_renew(self, lease_id: str, *, now_ms: int, until_ms: int) -> bool:
        """Extend a lease that is still held; False when it ran out or was released."""
        with self.db.transaction() as c:  # type: ignore[attr-defined]
            cur = c.execute("UPDATE outbox_leases SET until_ms = ? WHERE id = ? AND until_ms > ?",
                            (until_ms, lease_id, now_ms))
        return cur.rowcount == 1

    def outbox_release(self, lease_id: str) -> None:
        """Give a lease up: what is left of its rows is the sweeper's again."""
        with self.db.transaction() as c:  # type: ignore[attr-defined]
            c.execute("DELETE FROM outbox_leases WHERE id = ?", (lease_id,))

    def outbox_unleased(self, *, limit: int = 1000, older_than_s: float = 0) -> list[OutboxMessage]:
        """Messages not yet published that no live lease holds, oldest first (what the sweeper may send)."""
        now = _now_ms()
        cutoff = now - int(older_than_s * 1000)
        c = self.db.conn()  # type: ignore[attr-defined]
        live = c.execute("SELECT first_seq, last_seq FROM outbox_leases WHERE until_ms > ?", (now,)).fetchall()
        out: list[OutboxMessage] = []
        # One range scan per gap between leased ranges: rows a relay holds are not even read.
        for low, high in gaps(live):
            rows = c.execute(
                "SELECT seq, topic, key, value, headers FROM outbox WHERE seq > ? AND seq < ? AND created_ms <= ?"
                " ORDER BY seq LIMIT ?",
                (-1 if low is None else low, 2**63 - 1 if high is None else high, cutoff, limit - len(out)))
            out += [OutboxMessage(t, self._open_value(bytes(v)), k and bytes(k), _h_load(h), q)  # type: ignore[attr-defined]
                    for q, t, k, v, h in rows]
            if len(out) >= limit:
                break
        return out


class MongoLeases:
    """Outbox leases in the service's MongoDB database (needs ``self.mdb``)."""

    mdb: object

    def create_lease_indexes(self) -> None:
        """The index the sweeper's read of live leases uses (call once when the store opens)."""
        self.mdb["outbox_leases"].create_index("until_ms")  # type: ignore[attr-defined]

    def outbox_lease(self, messages: list[OutboxMessage], *, until_ms: int) -> str | None:
        """Lease outbox rows just added (inside their transaction) to the relay that will send them."""
        from bson import ObjectId

        seqs = [m.seq for m in messages if m.seq is not None]
        if not seqs:
            return None
        lease_id = uuid.uuid4().hex
        coll = self.mdb["outbox_leases"]  # type: ignore[attr-defined]
        coll.delete_many({"until_ms": {"$lte": _now_ms()}})
        # Sequence numbers are ObjectIds read as integers (96 bits): kept as ObjectIds, which MongoDB orders.
        coll.insert_one({"_id": lease_id, "first": ObjectId(format(min(seqs), "024x")),
                         "last": ObjectId(format(max(seqs), "024x")), "until_ms": until_ms})
        return lease_id

    def outbox_renew(self, lease_id: str, *, now_ms: int, until_ms: int) -> bool:
        """Extend a lease that is still held; False when it ran out or was released."""
        done = self.mdb["outbox_leases"].update_one(  # type: ignore[attr-defined]
            {"_id": lease_id, "until_ms": {"$gt": now_ms}}, {"$set": {"until_ms": until_ms}})
        return done.matched_count == 1

    def outbox_release(self, lease_id: str) -> None:
        """Give a lease up: what is left of its rows is the sweeper's again."""
        self.mdb["outbox_leases"].delete_one({"_id": lease_id})  # type: ignore[attr-defined]

    def outbox_unleased(self, *, limit: int = 1000, older_than_s: float = 0) -> list[OutboxMessage]:
        """Messages not yet published that no live lease holds, oldest first (what the sweeper may send)."""
        from bson import ObjectId

        now = _now_ms()
        cutoff = now - int(older_than_s * 1000)
        live = [(int(str(d["first"]), 16), int(str(d["last"]), 16))
                for d in self.mdb["outbox_leases"].find({"until_ms": {"$gt": now}})]  # type: ignore[attr-defined]
        out: list[OutboxMessage] = []
        for low, high in gaps(live):
            ids = {**({"$gt": ObjectId(format(low, "024x"))} if low is not None else {}),
                   **({"$lt": ObjectId(format(high, "024x"))} if high is not None else {})}
            query = {"created_ms": {"$lte": cutoff}, **({"_id": ids} if ids else {})}
            cur = self.mdb["outbox"].find(query).sort("_id", 1).limit(limit - len(out))  # type: ignore[attr-defined]
            out += [OutboxMessage(d["topic"], self._open_value(bytes(d["value"])),  # type: ignore[attr-defined]
                                  d["key"] and bytes(d["key"]), _h_load(d["headers"]), int(str(d["_id"]), 16))
                    for d in cur]
            if len(out) >= limit:
                break
        return out
