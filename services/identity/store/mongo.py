"""Identity's production store: MongoDB through pymongo, the same semantics as the SQLite store.

Writes run inside ``MongoDb.transaction()`` (a multi-document transaction on a replica set), so the
state and the outbox messages that announce it commit together. Every collection has the unique
index that makes its upserts idempotent, created when the store opens. Conditional writes ("keep
the earliest sighting", "newest value wins") are filters on the update, so the server decides them
atomically and a replay or a concurrent worker can never move a value backwards.

Bulk updates use ``UpdateMany`` on a filter that names a unique key: on a server it is the same
single-document upsert as ``UpdateOne``, and mongomock cannot take ``UpdateOne`` in ``bulk_write``
with this pymongo (mongomock issue 912).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from pymongo import ASCENDING, DESCENDING, UpdateMany

from services.identity.domain.cleaning import Ident
from services.identity.domain.names import NameIndex
from services.identity.domain.resolution import Found
from services.identity.store import (
    ConflictRow,
    EventRow,
    IdentifierRow,
    MergeRow,
    NewRecord,
    RecordRow,
    StatsRow,
    default_name_key,
)
from services.identity.store.mongo_corrections import MongoCorrections
from services.identity.store.mongo_imports import MongoImports
from services.identity.store.mongo_names import MongoNames
from services.identity.store.mongo_privacy import MongoPrivacy
from services.identity.store.mongo_scope import MongoScope
from services.identity.store.mongo_tokens import MongoTokens
from shared.contract.facts import FieldValue, PurchaseFact, RefundFact
from shared.storage import audit as audit_store
from shared.storage.crypto import SERVICE
from shared.storage.fact_tables import compact_json, open_field, seal_field
from shared.storage.outbox import MongoStore
from shared.storage.owners import MongoOwners

_NO_ID = {"_id": False}


def _before(key: tuple[int, str, str], names: tuple[str, str, str]) -> dict:
    """Documents whose ``names`` sort strictly before ``key`` (a row-value comparison)."""
    (a, b, c), (x, y, z) = names, key
    return {"$or": [{a: {"$lt": x}}, {a: x, b: {"$lt": y}}, {a: x, b: y, c: {"$lt": z}}]}


class MongoIdentityStore(MongoStore, MongoOwners, MongoPrivacy, MongoScope, MongoCorrections, MongoImports,
                         MongoNames, MongoTokens):
    """Identity data in a MongoDB database; every write method joins the caller's transaction."""

    def __init__(self, mdb, *, name_key: bytes | None = None, **options) -> None:
        self.names = NameIndex(name_key or default_name_key())
        super().__init__(mdb, **options)
        self._seal_identifiers_of_older_databases()

    def create_indexes(self) -> None:
        """The indexes every query and idempotent upsert here relies on (idempotent; run at open)."""
        m = self.mdb
        m["records"].create_index("root_id")
        # merged_into is null exactly for active customers: it serves customer_count and unmerge's walk.
        m["records"].create_index("merged_into")
        m["identifiers"].create_index([("type", ASCENDING), ("value", ASCENDING)], unique=True)
        m["identifiers"].create_index("record_id")
        m["events"].create_index([("source", ASCENDING), ("id", ASCENDING)], unique=True)
        m["events"].create_index([("record_id", ASCENDING), ("time_ms", DESCENDING), ("source", DESCENDING),
                                  ("id", DESCENDING)])
        for name in ("purchases", "refunds"):
            m[name].create_index([("source", ASCENDING), ("id", ASCENDING)], unique=True)
            m[name].create_index("record_id")
        m["attributes"].create_index([("record_id", ASCENDING), ("field", ASCENDING)], unique=True)
        m["merges"].create_index("survivor_id")
        m["merges"].create_index("merged_id")
        m["merge_blocks"].create_index([("a", ASCENDING), ("b", ASCENDING)], unique=True)
        m["conflicts"].create_index([("status", ASCENDING), ("at", DESCENDING), ("_id", ASCENDING)])
        m["conflicts"].create_index([("at", DESCENDING), ("_id", ASCENDING)])
        m["conflicts"].create_index("customer_ids")
        audit_store.mongo_audit_indexes(m)
        self.create_owner_indexes()
        m["parts"].create_index([("record_id", ASCENDING), ("part", ASCENDING)], unique=True)
        m["complaint_stores"].create_index("record_id", unique=True)
        self.create_correction_indexes()
        self.create_import_indexes()
        self.create_name_indexes()
        self.create_token_indexes()

    # -- writes -------------------------------------------------------------------------
    def event_seen(self, source: str, event_id: str) -> bool:
        """Whether ``(source, id)`` was processed before."""
        return self.mdb["events"].find_one({"source": source, "id": event_id}, {"_id": True}) is not None

    def seen(self, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which ``(source, id)`` pairs were processed before (one query for a batch)."""
        if not keys:
            return set()
        by_source: dict[str, list[str]] = {}
        for source, event_id in keys:
            by_source.setdefault(source, []).append(event_id)
        query = {"$or": [{"source": src, "id": {"$in": ids}} for src, ids in by_source.items()]}
        return {(d["source"], d["id"]) for d in self.mdb["events"].find(query, {"source": 1, "id": 1})}

    def find(self, idents: Iterable[Ident]) -> dict[Ident, Found]:
        """Where each known identifier points."""
        wanted = list(dict.fromkeys(idents))
        if not wanted:
            return {}
        # Identifiers are held by their keyed pseudonym (the value itself is sealed): look that up.
        by_index = {(t, self.keys.index(t, v)): (t, v) for t, v in wanted}
        hits = list(self.mdb["identifiers"].find(
            {"$or": [{"type": t, "value": ix} for t, ix in by_index]}, {"type": 1, "value": 1, "record_id": 1}))
        if not hits:
            return {}
        records = {d["_id"]: d for d in self.mdb["records"].find(
            {"_id": {"$in": list({h["record_id"] for h in hits})}}, {"root_id": 1})}
        roots = {d["_id"]: d.get("phone") is not None for d in self.mdb["records"].find(
            {"_id": {"$in": list({r["root_id"] for r in records.values()})}}, {"phone": 1})}
        out: dict[Ident, Found] = {}
        for h in hits:
            record = records.get(h["record_id"])
            if record is not None:
                out[by_index[(h["type"], h["value"])]] = Found(h["record_id"], record["root_id"],
                                                     roots.get(record["root_id"], False))
        return out

    def blocked_pairs(self, root_ids: Iterable[str]) -> set[frozenset[str]]:
        """Pairs of these customers that hold records an unmerge separated, so they are not merged again
        automatically (also after a separated record joined another customer)."""
        ids = list(set(root_ids))
        if len(ids) < 2:
            return set()
        root_of = {d["_id"]: d["root_id"] for d in self.mdb["records"].find({"root_id": {"$in": ids}}, {"root_id": 1})}
        held = list(root_of)
        rows = self.mdb["merge_blocks"].find({"a": {"$in": held}, "b": {"$in": held}}, _NO_ID)
        return {frozenset((root_of[r["a"]], root_of[r["b"]])) for r in rows if root_of[r["a"]] != root_of[r["b"]]}

    def create_record(self, record_id: str, *, phone: str | None, at: str) -> None:
        """A new customer record (no-op if it exists)."""
        self.create_records([NewRecord(record_id, phone, at)])

    def create_records(self, rows: list[NewRecord]) -> None:
        """New customer records, in order (each a no-op if it exists); their data keys made in one go."""
        if not rows:
            return
        self.keys.prepare(r.id for r in rows)
        self.mdb["records"].bulk_write([
            UpdateMany({"_id": r.id}, {"$setOnInsert": {"root_id": r.id, "merged_into": None,
                                                         "phone": self.keys.seal(r.id, "records.phone", r.phone),
                                                         "created_at": r.at, "updated_at": r.at}}, upsert=True)
            for r in rows], ordered=True)

    def link(self, record_id: str, idents: list[Ident], *, source: str, event_id: str, at: str) -> None:
        """Attach identifiers to a record; a known one keeps its record and its earliest sighting."""
        self.link_all([(record_id, idents, source, event_id, at)])

    def link_all(self, links: list[tuple[str, list[Ident], str, str, str]]) -> None:
        """``link`` for each (record, identifiers, source, event id, at) in turn, in one ordered bulk write."""
        keys, ops = self.keys, []
        for record_id, idents, source, event_id, at in links:
            if not idents:
                continue
            seen = {"first_seen": at, "source": source, "event_id": event_id}
            ops += [UpdateMany({"type": t, "value": keys.index(t, v)},
                               {"$setOnInsert": {"record_id": record_id, **seen,
                                                 "sealed": keys.seal(record_id, f"identifiers.{t}", v)}}, upsert=True)
                    for t, v in idents]
            # An earlier sighting of an identifier this record already holds moves its first_seen back.
            ops.append(UpdateMany({"$or": [{"type": t, "value": keys.index(t, v)} for t, v in idents],
                                   "record_id": record_id, "first_seen": {"$gt": at}}, {"$set": seen}))
        if ops:
            self.mdb["identifiers"].bulk_write(ops, ordered=True)

    def merge(self, survivor_id: str, merged_id: str, *, merge_id: str, cause: dict, at: str) -> list[str]:
        """Put ``merged_id`` and everything under it beneath ``survivor_id``; returns the records moved."""
        records = self.mdb["records"]
        moved = [d["_id"] for d in records.find({"root_id": merged_id}, {"_id": 1}).sort("_id", ASCENDING)]
        records.update_one({"_id": merged_id}, {"$set": {"merged_into": survivor_id, "updated_at": at}})
        records.update_many({"root_id": merged_id}, {"$set": {"root_id": survivor_id}})
        self.mdb["merges"].update_one(
            {"_id": merge_id},
            {"$setOnInsert": {"survivor_id": survivor_id, "merged_id": merged_id, "cause": compact_json(cause),
                              "at": at, "undone_at": None, "undone_by": None}},
            upsert=True,
        )
        return moved

    def unmerge(self, merge_id: str, *, by: str, at: str) -> list[str]:
        """Give the merged record and the records under it their own customer again."""
        m = self.merge_row(merge_id)
        assert m is not None and m.undone_at is None
        found = list(self.mdb["records"].aggregate([
            {"$match": {"_id": m.merged_id}},
            {"$graphLookup": {"from": "records", "startWith": "$_id", "connectFromField": "_id",
                              "connectToField": "merged_into", "as": "under"}},
            {"$project": {"under._id": 1}},
        ]))
        subtree = [m.merged_id, *sorted({d["_id"] for d in found[0]["under"]} - {m.merged_id})] if found else []
        records = self.mdb["records"]
        records.update_many({"_id": {"$in": subtree}}, {"$set": {"root_id": m.merged_id}})
        records.update_one({"_id": m.merged_id}, {"$set": {"merged_into": None, "updated_at": at}})
        records.update_one({"_id": m.survivor_id}, {"$set": {"updated_at": at}})
        self.mdb["merges"].update_one({"_id": merge_id}, {"$set": {"undone_at": at, "undone_by": by}})
        a, b = sorted((m.survivor_id, m.merged_id))
        self.mdb["merge_blocks"].bulk_write(
            [UpdateMany({"a": x, "b": y}, {"$setOnInsert": {"at": at}}, upsert=True) for x, y in ((a, b), (b, a))])
        return subtree

    def add_conflict(self, conflict: ConflictRow) -> None:
        """Record a conflict for review (once per id)."""
        self.mdb["conflicts"].update_one(
            {"_id": conflict.conflict_id},
            {"$setOnInsert": {
                "kind": conflict.kind, "identifier_type": conflict.identifier_type,
                "identifier_pseudonym": conflict.identifier_pseudonym, "customer_ids": list(conflict.customer_ids),
                "source": conflict.source, "event_id": conflict.event_id, "at": conflict.at,
                "status": conflict.status, "resolved_by": conflict.resolved_by,
                "note": self.keys.seal(SERVICE, "conflicts.note", conflict.note),
            }},
            upsert=True,
        )

    def add_events(self, rows: list[EventRow]) -> None:
        """Keep events for the timeline (marks them processed); a second ``(source, id)`` is refused."""
        if rows:
            self.keys.prepare(r.record_id for r in rows)
            self.mdb["events"].insert_many(
                [{**vars(r), "payload": self.keys.seal(r.record_id, "events.payload", r.payload)} for r in rows],
                ordered=True)

    def add_purchases(self, rows: list[PurchaseFact]) -> None:
        """Purchase facts (a second ``(source, id)`` changes nothing)."""
        self._facts("purchases", [
            (r, {"record_id": r.record_id, "order_id": r.order_id, "amount_minor": r.amount_minor,
                 "store_id": r.store_id, "time_ms": r.time_ms, "day": r.day}) for r in rows])

    def add_refunds(self, rows: list[RefundFact]) -> None:
        """Refund facts (a second ``(source, id)`` changes nothing)."""
        self._facts("refunds", [
            (r, {"record_id": r.record_id, "order_id": r.order_id, "amount_minor": r.amount_minor,
                 "time_ms": r.time_ms}) for r in rows])

    def _facts(self, collection: str, rows: list[tuple[PurchaseFact | RefundFact, dict]]) -> None:
        if rows:
            self.mdb[collection].bulk_write(
                [UpdateMany({"source": r.source, "id": r.id}, {"$setOnInsert": doc}, upsert=True) for r, doc in rows],
                ordered=True)

    def put_attributes(self, values: list[tuple[str, list[FieldValue]]]) -> None:
        """Set fields of records where the value is newer than the one held; a name's index entry with it."""
        ops = []
        for record_id, vs in values:
            for v in vs:
                doc = {"value": seal_field(self.keys, record_id, v.field, v.value), "time_ms": v.time_ms,
                       "source": v.source, "event_id": v.event_id}
                key = {"record_id": record_id, "field": v.field}
                ops.append(UpdateMany(key, {"$setOnInsert": doc}, upsert=True))
                # Newest wins; equal times are ordered by source then event id, so arrival order never matters.
                held_older = _before((v.time_ms, v.source, v.event_id), ("time_ms", "source", "event_id"))
                ops.append(UpdateMany({**key, **held_older}, {"$set": doc}))
        if ops:
            self.mdb["attributes"].bulk_write(ops, ordered=True)
        self._index_names(values)

    def touch(self, record_id: str, *, at: str) -> None:
        """Note that a customer changed."""
        self.mdb["records"].update_one({"_id": record_id, "updated_at": {"$lt": at}}, {"$set": {"updated_at": at}})

    def touch_all(self, record_ids: list[str], *, at: str) -> None:
        """Note that these customers changed, in one write (a batch's, issue 13)."""
        if record_ids:
            self.mdb["records"].update_many({"_id": {"$in": record_ids}, "updated_at": {"$lt": at}},
                                            {"$set": {"updated_at": at}})

    # -- reads --------------------------------------------------------------------------
    def record(self, record_id: str) -> RecordRow | None:
        """One record."""
        d = self.mdb["records"].find_one({"_id": record_id})
        if d is None:
            return None
        return RecordRow(d["_id"], d["root_id"], d.get("merged_into"),
                         self.keys.open(d["_id"], "records.phone", d.get("phone")), d["created_at"], d["updated_at"])

    def group(self, root_id: str) -> list[str]:
        """The records that make up a customer."""
        return [d["_id"] for d in self.mdb["records"].find({"root_id": root_id}, {"_id": 1}).sort("_id", ASCENDING)]

    def identifiers(self, record_ids: list[str]) -> list[IdentifierRow]:
        """Identifiers of these records, oldest first."""
        out = []
        for d in self.mdb["identifiers"].find({"record_id": {"$in": record_ids}}, _NO_ID):
            # Written before encryption at rest: the value itself, not a pseudonym, and nothing sealed.
            value = self.keys.open(d["record_id"], f"identifiers.{d['type']}", d["sealed"]) if "sealed" in d \
                else d["value"]
            if value is not None:
                out.append(IdentifierRow(d["type"], value, d["record_id"], d["first_seen"], d["source"],
                                         d["event_id"]))
        # Sorted once opened: the stored value is a pseudonym, whose order means nothing.
        return sorted(out, key=lambda r: (r.first_seen, r.type, r.value))

    def attributes(self, record_ids: list[str]) -> list[FieldValue]:
        """Every field value held by these records."""
        cur = self.mdb["attributes"].find({"record_id": {"$in": record_ids}}, _NO_ID).sort(
            [("record_id", ASCENDING), ("field", ASCENDING)])
        return [FieldValue(d["field"], open_field(self.keys, d["record_id"], d["field"], d["value"]), d["time_ms"],
                           d["source"], d["event_id"]) for d in cur]

    def stats(self, record_ids: list[str]) -> StatsRow:
        """Purchase and refund figures over these records, from the facts themselves."""
        match = {"$match": {"record_id": {"$in": record_ids}}}
        facet = next(self.mdb["purchases"].aggregate([match, {"$facet": {
            "totals": [
                {"$group": {"_id": None, "n": {"$sum": 1}, "spend": {"$sum": "$amount_minor"},
                            "first": {"$min": "$time_ms"}, "last": {"$max": "$time_ms"},
                            "days": {"$addToSet": "$day"}}},
                {"$project": {"n": 1, "spend": 1, "first": 1, "last": 1, "days": {"$size": "$days"}}},
            ],
            "stores": [
                {"$match": {"store_id": {"$ne": None}}},
                {"$group": {"_id": "$store_id", "days": {"$addToSet": "$day"}, "last": {"$max": "$day"}}},
                {"$project": {"days": {"$size": "$days"}, "last": 1}},
                {"$sort": {"_id": 1}},
            ],
        }}]))
        # A $group over no documents yields no row on a server and an empty one on mongomock.
        t = facet["totals"][0] if facet["totals"] else {}
        refunds = list(self.mdb["refunds"].aggregate(
            [match, {"$group": {"_id": None, "total": {"$sum": "$amount_minor"}}}]))
        return StatsRow(
            purchase_count=t.get("n", 0), purchase_days=t.get("days", 0), spend_minor=t.get("spend", 0),
            refund_minor=refunds[0].get("total", 0) if refunds else 0, first_ms=t.get("first"), last_ms=t.get("last"),
            store_days=[(s["_id"], s["days"], s["last"]) for s in facet["stores"]],
        )

    def timeline(self, record_ids: list[str], *, before: tuple[int, str, str] | None, limit: int) -> list[EventRow]:
        """Events of these records, newest first, after a keyset cursor."""
        query: dict = {"record_id": {"$in": record_ids}}
        if before is not None:
            query.update(_before(before, ("time_ms", "source", "id")))
        cur = self.mdb["events"].find(query, _NO_ID).sort(
            [("time_ms", DESCENDING), ("source", DESCENDING), ("id", DESCENDING)]).limit(limit)
        return [EventRow(d["source"], d["id"], d["record_id"], d["type"], d["channel"], d["time"], d["time_ms"],
                         self.keys.open(d["record_id"], "events.payload", d["payload"]) or "{}", d["ingested_at"])
                for d in cur]

    @staticmethod
    def _merge(d: dict) -> MergeRow:
        return MergeRow(d["_id"], d["survivor_id"], d["merged_id"], json.loads(d["cause"]), d["at"],
                        d.get("undone_at"), d.get("undone_by"))

    def merges(self, record_ids: list[str]) -> list[MergeRow]:
        """Merges that involved any of these records, newest first."""
        cur = self.mdb["merges"].find(
            {"$or": [{"survivor_id": {"$in": record_ids}}, {"merged_id": {"$in": record_ids}}]}
        ).sort([("at", DESCENDING), ("_id", ASCENDING)])
        return [self._merge(d) for d in cur]

    def merge_row(self, merge_id: str) -> MergeRow | None:
        """One merge."""
        d = self.mdb["merges"].find_one({"_id": merge_id})
        return self._merge(d) if d else None

    def conflicts(self, *, status: str | None, customer_id: str | None, offset: int, limit: int) -> list[ConflictRow]:
        """Identity conflicts for review, newest first."""
        query: dict = {}
        if status:
            query["status"] = status
        if customer_id:
            query["customer_ids"] = customer_id
        cur = self.mdb["conflicts"].find(query).sort([("at", DESCENDING), ("_id", ASCENDING)]).skip(offset).limit(limit)
        return [
            ConflictRow(d["_id"], d["kind"], d["identifier_type"], d["identifier_pseudonym"], tuple(d["customer_ids"]),
                        d["source"], d["event_id"], d["at"], d["status"], d.get("resolved_by"),
                        self.keys.open(SERVICE, "conflicts.note", d.get("note")))
            for d in cur
        ]

    def set_conflict_status(self, conflict_id: str, *, status: str, by: str, note: str | None) -> bool:
        """Close a conflict; False when it does not exist."""
        done = self.mdb["conflicts"].update_one(
            {"_id": conflict_id},
            {"$set": {"status": status, "resolved_by": by, "note": self.keys.seal(SERVICE, "conflicts.note", note)}})
        return done.matched_count == 1

    def customer_count(self) -> int:
        """How many active customers there are (records not merged into another: their own root)."""
        return self.mdb["records"].count_documents({"merged_into": None})

    def put_part(self, customer_id: str, part: str, value: dict, *, version: str) -> None:
        """Another service's part of a customer's view, kept if newer than what is held."""
        self.put_parts([(customer_id, part, value, version)])

    def put_parts(self, parts: list[tuple[str, str, dict, str]]) -> None:
        """Parts (customer, part, value, version) as ``put_part`` would keep them one after another."""
        ops = []
        for customer_id, part, value, version in parts:
            key = {"record_id": customer_id, "part": part}
            doc = {"value": compact_json(value), "version": version}
            ops += [UpdateMany(key, {"$setOnInsert": doc}, upsert=True),
                    UpdateMany({**key, "version": {"$lte": version}}, {"$set": doc})]
        if ops:
            self.mdb["parts"].bulk_write(ops, ordered=True)

    def parts(self, record_ids: list[str]) -> dict[str, list[dict]]:
        """Other services' parts held for these records, by part name."""
        out: dict[str, list[dict]] = {}
        cur = self.mdb["parts"].find({"record_id": {"$in": record_ids}}, _NO_ID).sort(
            [("record_id", ASCENDING), ("part", ASCENDING)])
        for d in cur:
            out.setdefault(d["part"], []).append(json.loads(d["value"]))
        return out

    # Issue 12, access (H1).
    def store_ids_seen(self) -> set[str]:
        """Every store id a purchase named (read for GET /v1/stores only)."""
        return {s for s in self.mdb["purchases"].distinct("store_id") if s is not None}
