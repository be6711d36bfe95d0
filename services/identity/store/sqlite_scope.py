"""Identity's SQLite adapter, issue 12's scoped-access operations: each customer's owning store, the conflicts and
counts a scope sees, the store of each latest complaint (a private mixin of the adapter)."""

from __future__ import annotations

import json

from services.identity.store import (
    COMPLAINT_BACKFILL,
    ComplaintStoreRow,
    ConflictRow,
    complaint_store_in,
)
from shared.storage.base import chunks as _chunks
from shared.storage.base import in_placeholders as _in
from shared.storage.crypto import SERVICE


class SqliteScope:
    """Mixed into the sqlite adapter; uses the adapter's database, keyring and scope filter."""

    # -- issue 12, scoped access (H2): each customer's owning store -----------------------
    def store_days_of(self, root_ids: list[str]) -> dict[str, list[tuple[str, int, str]]]:
        """Per active customer, its stores with purchase days and last day (over every record it holds)."""
        out: dict[str, list[tuple[str, int, str]]] = {r: [] for r in root_ids}
        for part in _chunks(list(out), 500):
            rows = self.db.conn().execute(
                f"SELECT r.root_id, p.store_id, COUNT(DISTINCT p.day), MAX(p.day) FROM records r"
                f" JOIN purchases p ON p.record_id = r.id WHERE r.root_id IN ({_in(part)})"
                " AND p.store_id IS NOT NULL GROUP BY r.root_id, p.store_id", part)
            for root, store, days, last in rows:
                out[root].append((store, days, last))
        return out

    def conflicts_owned(self, stores: frozenset[str], *, status: str | None, customer_id: str | None, offset: int,
                        limit: int) -> list[ConflictRow]:
        """:meth:`conflicts` whose every customer is owned by one of ``stores`` (filtered in the query)."""
        marks = ",".join("?" * len(stores)) or "NULL"
        conds, args = [f"NOT EXISTS (SELECT 1 FROM json_each(customer_ids) j WHERE j.value NOT IN"
                       f" (SELECT customer_id FROM customer_owners WHERE store_id IN ({marks})))"], sorted(stores)
        if status:
            conds.append("status = ?")
            args.append(status)
        if customer_id:
            conds.append("EXISTS (SELECT 1 FROM json_each(customer_ids) WHERE value = ?)")
            args.append(customer_id)
        rows = self.db.conn().execute(
            f"SELECT * FROM conflicts WHERE {' AND '.join(conds)} ORDER BY at DESC, conflict_id LIMIT ? OFFSET ?",
            [*args, limit, offset])
        # The note opened as :meth:`conflicts` opens it (a scoped list showed the sealed text).
        return [ConflictRow(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), *r[5:10],
                            self.keys.open(SERVICE, "conflicts.note", r[10])) for r in rows]

    def conflict_customers(self, conflict_id: str) -> tuple[str, ...] | None:
        """The customers a conflict names (None: no such conflict)."""
        row = self.db.conn().execute("SELECT customer_ids FROM conflicts WHERE conflict_id = ?",
                                     (conflict_id,)).fetchone()
        return tuple(json.loads(row[0])) if row else None

    # -- the store of each customer's latest complaint -----------------------------------
    def add_complaint_stores(self, rows: list[ComplaintStoreRow]) -> None:
        """Keep each record's latest complaint store (equal times go to the higher store id, so arrival order
        never matters)."""
        self.db.conn().executemany(
            "INSERT INTO complaint_stores VALUES (?,?,?) ON CONFLICT (record_id) DO UPDATE SET"
            " store_id = excluded.store_id, time_ms = excluded.time_ms"
            " WHERE (excluded.time_ms, excluded.store_id) > (complaint_stores.time_ms, complaint_stores.store_id)",
            [(r.record_id, r.store_id, r.time_ms) for r in rows])

    def complaint_stores_of(self, root_ids: list[str]) -> dict[str, str]:
        """Per active customer that complained naming a store, the store of its latest such complaint (over
        every record it holds)."""
        latest: dict[str, tuple[int, str]] = {}
        for part in _chunks(list(dict.fromkeys(root_ids)), 500):
            rows = self.db.conn().execute(
                f"SELECT r.root_id, k.time_ms, k.store_id FROM records r JOIN complaint_stores k"
                f" ON k.record_id = r.id WHERE r.root_id IN ({_in(part)})", part)
            for root, time_ms, store in rows:
                latest[root] = max(latest.get(root, (time_ms, store)), (time_ms, store))
        return {root: store for root, (_, store) in latest.items()}

    # -- issue 12, scope gaps: the operations summary counted over a scope -------------------------
    def customer_count_owned(self, stores: frozenset[str]) -> int:
        """How many active customers one of ``stores`` owns (counted in the query)."""
        owned, args = self.owned_sql("id", stores, via_memberships=False)
        return self.db.conn().execute(f"SELECT COUNT(*) FROM records WHERE root_id = id AND {owned}",
                                      args).fetchone()[0]

    def backfill_complaint_stores(self, *, at: str) -> list[str]:
        """Once per database (in the caller's transaction): the complaint stores of every complaint kept before
        ``complaint_stores`` existed, read from the complaint events' payloads (only those events are opened);
        the active customers given one, whose owning store may move (none when it was done before)."""
        c = self.db.conn()
        if c.execute("SELECT 1 FROM backfills WHERE name = ?", (COMPLAINT_BACKFILL,)).fetchone():
            return []
        found = c.execute("SELECT record_id, time_ms, payload FROM events WHERE type = 'crm.complaint'").fetchall()
        self.keys.load(r for r, _, _ in found)
        rows = [ComplaintStoreRow(r, store, t) for r, t, payload in found
                if (store := complaint_store_in(self.keys.open(r, "events.payload", payload)))]
        self.add_complaint_stores(rows)
        c.execute("INSERT INTO backfills VALUES (?, ?)", (COMPLAINT_BACKFILL, at))
        roots: set[str] = set()
        for part in _chunks(sorted({r.record_id for r in rows}), 500):
            roots.update(x for (x,) in c.execute(f"SELECT root_id FROM records WHERE id IN ({_in(part)})", part))
        return sorted(roots)
