"""Identity's MongoDB adapter, issue 12's scoped-access operations: each customer's owning store, the conflicts and
counts a scope sees, the store of each latest complaint (a private mixin of the adapter)."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, UpdateMany

from services.identity.store import (
    COMPLAINT_BACKFILL,
    ComplaintStoreRow,
    ConflictRow,
    complaint_store_in,
)
from shared.storage.crypto import SERVICE

_NO_ID = {"_id": False}


class MongoScope:
    """Mixed into the mongo adapter; uses the adapter's database, keyring and scope filter."""

    # -- issue 12, scoped access (H2): each customer's owning store -----------------------
    def store_days_of(self, root_ids: list[str]) -> dict[str, list[tuple[str, int, str]]]:
        """Per active customer, its stores with purchase days and last day (over every record it holds)."""
        out: dict[str, list[tuple[str, int, str]]] = {r: [] for r in root_ids}
        root_of = {d["_id"]: d["root_id"] for d in self.mdb["records"].find(
            {"root_id": {"$in": list(out)}}, {"_id": 1, "root_id": 1})}
        days: dict[tuple[str, str], set[str]] = {}
        for d in self.mdb["purchases"].find({"record_id": {"$in": list(root_of)}, "store_id": {"$ne": None}},
                                            {"record_id": 1, "store_id": 1, "day": 1}):
            days.setdefault((root_of[d["record_id"]], d["store_id"]), set()).add(d["day"])
        for (root, store), seen in sorted(days.items()):
            out[root].append((store, len(seen), max(seen)))
        return out

    def conflicts_owned(self, stores: frozenset[str], *, status: str | None, customer_id: str | None, offset: int,
                        limit: int) -> list[ConflictRow]:
        """:meth:`conflicts` whose every customer is owned by one of ``stores`` (filtered in the query)."""
        owned = self.owned_records(stores, via_memberships=False)
        query: dict = {"customer_ids": {"$not": {"$elemMatch": {"$nin": owned}}}}
        if status:
            query["status"] = status
        if customer_id:
            query["$and"] = [{"customer_ids": customer_id}]
        cur = self.mdb["conflicts"].find(query).sort([("at", DESCENDING), ("_id", ASCENDING)]).skip(offset).limit(limit)
        # The note opened as :meth:`conflicts` opens it (a scoped list showed the sealed text).
        return [
            ConflictRow(d["_id"], d["kind"], d["identifier_type"], d["identifier_pseudonym"], tuple(d["customer_ids"]),
                        d["source"], d["event_id"], d["at"], d["status"], d.get("resolved_by"),
                        self.keys.open(SERVICE, "conflicts.note", d.get("note")))
            for d in cur
        ]

    def conflict_customers(self, conflict_id: str) -> tuple[str, ...] | None:
        """The customers a conflict names (None: no such conflict)."""
        doc = self.mdb["conflicts"].find_one({"_id": conflict_id}, {"customer_ids": 1})
        return tuple(doc["customer_ids"]) if doc else None

    # -- the store of each customer's latest complaint -----------------------------------
    def add_complaint_stores(self, rows: list[ComplaintStoreRow]) -> None:
        """Keep each record's latest complaint store (equal times go to the higher store id, so arrival order
        never matters)."""
        ops = []
        for r in rows:
            doc, key = {"store_id": r.store_id, "time_ms": r.time_ms}, {"record_id": r.record_id}
            ops.append(UpdateMany(key, {"$setOnInsert": doc}, upsert=True))
            held_older = {"$or": [{"time_ms": {"$lt": r.time_ms}},
                                  {"time_ms": r.time_ms, "store_id": {"$lt": r.store_id}}]}
            ops.append(UpdateMany({**key, **held_older}, {"$set": doc}))
        if ops:
            self.mdb["complaint_stores"].bulk_write(ops, ordered=True)

    def complaint_stores_of(self, root_ids: list[str]) -> dict[str, str]:
        """Per active customer that complained naming a store, the store of its latest such complaint (over
        every record it holds)."""
        root_of = {d["_id"]: d["root_id"] for d in self.mdb["records"].find(
            {"root_id": {"$in": list(dict.fromkeys(root_ids))}}, {"_id": 1, "root_id": 1})}
        latest: dict[str, tuple[int, str]] = {}
        for d in self.mdb["complaint_stores"].find({"record_id": {"$in": list(root_of)}}, _NO_ID):
            root, seen = root_of[d["record_id"]], (d["time_ms"], d["store_id"])
            latest[root] = max(latest.get(root, seen), seen)
        return {root: store for root, (_, store) in latest.items()}

    # -- issue 12, scope gaps: the operations summary counted over a scope -------------------------
    def customer_count_owned(self, stores: frozenset[str]) -> int:
        """How many active customers one of ``stores`` owns (counted in the query)."""
        owned = self.owned_records(stores, via_memberships=False)
        return self.mdb["records"].count_documents({"merged_into": None, "_id": {"$in": owned}})

    def backfill_complaint_stores(self, *, at: str) -> list[str]:
        """Once per database (in the caller's transaction): the complaint stores of every complaint kept before
        ``complaint_stores`` existed, read from the complaint events' payloads (only those events are opened);
        the active customers given one, whose owning store may move (none when it was done before)."""
        m = self.mdb
        if m["backfills"].find_one({"_id": COMPLAINT_BACKFILL}) is not None:
            return []
        found = [(d["record_id"], d["time_ms"], d["payload"]) for d in m["events"].find(
            {"type": "crm.complaint"}, {"_id": 0, "record_id": 1, "time_ms": 1, "payload": 1})]
        self.keys.load(r for r, _, _ in found)
        rows = [ComplaintStoreRow(r, store, t) for r, t, payload in found
                if (store := complaint_store_in(self.keys.open(r, "events.payload", payload)))]
        self.add_complaint_stores(rows)
        m["backfills"].update_one({"_id": COMPLAINT_BACKFILL}, {"$setOnInsert": {"at": at}}, upsert=True)
        records = sorted({r.record_id for r in rows})
        return sorted({d["root_id"] for d in m["records"].find({"_id": {"$in": records}}, {"root_id": 1})})
