"""Identity's MongoDB adapter, issue 16's search by name: the blind index of each record's name, kept in the
same call as the name (a private mixin of the adapter)."""

from __future__ import annotations

from pymongo import UpdateMany

from services.identity.domain.names import NameIndex
from services.identity.store.sqlite_names import NAME_BACKFILL, name_rows
from shared.contract.facts import FieldValue
from shared.storage.fact_tables import open_doc_field


class MongoNames:
    """Mixed into the mongo adapter; collection ``name_index``: ``_id`` the record, the HMAC of its newest name
    (null once cleared) and that name's order, so it follows ``attributes`` exactly."""

    names: NameIndex

    def create_name_indexes(self) -> None:
        """The index a search by name reads (call once when the store opens)."""
        self.mdb["name_index"].create_index("digest")

    def _index_names(self, values: list[tuple[str, list[FieldValue]]]) -> None:
        # Called by put_attributes with the same values: newest wins here exactly as in ``attributes``.
        ops = []
        for record_id, digest, time_ms, source, event_id in name_rows(self.names, values):
            doc = {"digest": digest, "time_ms": time_ms, "source": source, "event_id": event_id}
            ops.append(UpdateMany({"_id": record_id}, {"$setOnInsert": doc}, upsert=True))
            held_older = {"$or": [{"time_ms": {"$lt": time_ms}}, {"time_ms": time_ms, "source": {"$lt": source}},
                                  {"time_ms": time_ms, "source": source, "event_id": {"$lt": event_id}}]}
            ops.append(UpdateMany({"_id": record_id, **held_older}, {"$set": doc}))
        if ops:
            self.mdb["name_index"].bulk_write(ops, ordered=True)

    def customers_named(self, name: str, *, stores: frozenset[str] | None, offset: int, limit: int) -> list[str]:
        """The active customers one of whose records is named ``name`` now (compared in normal form), by id;
        with ``stores``, only customers one of them owns (filtered before paging, so pages stay whole)."""
        digest = self.names.digest(name)
        if digest is None:
            return []
        records = [d["_id"] for d in self.mdb["name_index"].find({"digest": digest}, {"_id": 1})]
        roots = sorted({d["root_id"] for d in self.mdb["records"].find({"_id": {"$in": records}}, {"root_id": 1})})
        if stores is not None:
            owned = {d["_id"] for d in self.mdb["customer_owners"].find(
                {"_id": {"$in": roots}, "store_id": {"$in": sorted(stores)}}, {"_id": 1})}
            roots = [r for r in roots if r in owned]
        return roots[offset:offset + limit]

    def rebuild_name_index(self, *, at: str) -> bool:
        """Once per key (in the caller's transaction): the index rebuilt from every record's sealed name, for
        names kept before the index existed or under another key; False when it was built with this key."""
        m, done = self.mdb, f"{NAME_BACKFILL}:{self.names.fingerprint()}"
        if m["backfills"].find_one({"_id": done}) is not None:
            return False
        found = list(m["attributes"].find({"field": "name"}, {"_id": 0, "record_id": 1, "value": 1, "time_ms": 1,
                                                              "source": 1, "event_id": 1}))
        self.keys.load(d["record_id"] for d in found)
        m["name_index"].delete_many({})
        if found:
            m["name_index"].insert_many([
                {"_id": d["record_id"], "digest": self.names.digest(open_doc_field(self.keys, d["record_id"], "name",
                                                                                   d["value"])),
                 "time_ms": d["time_ms"], "source": d["source"], "event_id": d["event_id"]} for d in found])
        m["backfills"].delete_many({"_id": {"$regex": f"^{NAME_BACKFILL}:"}})
        m["backfills"].update_one({"_id": done}, {"$setOnInsert": {"at": at}}, upsert=True)
        return True
