"""Issue 12's personal-data operations of identity's MongoDB store, mixed into ``MongoIdentityStore``:
sealing identifiers of databases from before encryption at rest, the audit log and retention, erasure.

Adapter-private (kept apart so ``mongo.py`` holds the identity graph itself); the indexes are made there.
"""

from __future__ import annotations

from collections.abc import Callable

from services.identity.store import ErasureRow
from shared.access.audit import AuditEntry, AuditQuery
from shared.storage import audit as audit_store


class MongoPrivacy:
    """Encryption-at-rest migration, audit log, retention and erasure over ``self.mdb`` and ``self.keys``."""

    def _seal_identifiers_of_older_databases(self) -> None:
        # A database from before encryption at rest holds identifiers in clear: each is re-keyed to its
        # pseudonym and sealed once (idempotent: a document with ``sealed`` is never touched again).
        coll = self.mdb["identifiers"]
        for d in coll.find({"sealed": {"$exists": False}}):
            t, v, rec = d["type"], d["value"], d["record_id"]
            sealed = {"value": self.keys.index(t, v), "sealed": self.keys.seal(rec, f"identifiers.{t}", v)}
            coll.update_one({"_id": d["_id"], "sealed": {"$exists": False}}, {"$set": sealed})

    # -- issue 12, audit and retention (H5) ------------------------------------------------------------

    def audit_add(self, entries: list[AuditEntry]) -> None:
        """Append audit entries once per ``audit_id`` (a message delivered again changes nothing)."""
        audit_store.mongo_audit_add(self.mdb, entries)

    def audit_find(self, query: AuditQuery, *, after: tuple[str, str] | None, limit: int) -> list[AuditEntry]:
        """Audit entries matching ``query``, newest first, after the keyset position ``after``."""
        return audit_store.mongo_audit_find(self.mdb, query, after=after, limit=limit)

    def audit_scrub(self, customer_ids: list[str], *, scrub: Callable[[str], str], targets: list[str]) -> int:
        """Rewrite through ``scrub`` (an erasure) the reasons of the audit entries about these customers or
        acting on these ``targets`` (their conflicts)."""
        return audit_store.mongo_audit_scrub(self.mdb, customer_ids, scrub=scrub,
                                               targets=targets)

    def audit_purge(self, *, before: str) -> int:
        """Delete audit entries older than ``before`` (retention)."""
        return audit_store.mongo_audit_purge(self.mdb, before=before)

    def timeline_purge(self, *, before_ms: int) -> int:
        """Drop the raw payload of events older than ``before_ms`` (the timeline keeps type, time, channel)."""
        done = self.mdb["events"].update_many({"time_ms": {"$lt": before_ms}, "payload": {"$ne": "{}"}},
                                              {"$set": {"payload": "{}"}})
        return done.modified_count

    # -- issue 12, erasure (H4) ---------------------------------------------------------
    def erase(self, records: list[str], *, erasure: ErasureRow, pseudonyms: list[str]) -> None:
        """Delete everything held of these records and keep the erasure and the pseudonyms of their
        identifiers (never the identifiers), so later events carrying them are recognised and dropped; the
        numbers phone changes took off them stay noted as theirs until the change, unreadable."""
        m, ids = self.mdb, list(records)
        m["erasures"].update_one({"_id": erasure.erasure_id}, {"$setOnInsert": {
            "customer_id": erasure.customer_id, "records": list(erasure.records), "reason": erasure.reason,
            "requested_by": erasure.requested_by, "requested_at": erasure.requested_at,
            "confirmed": dict(erasure.confirmed)}}, upsert=True)
        for p in set(pseudonyms):
            m["erased_identifiers"].update_one({"_id": p}, {"$setOnInsert": {"erasure_id": erasure.erasure_id}},
                                               upsert=True)
        if not ids:
            return
        for name in ("identifiers", "events", "purchases", "refunds", "attributes", "parts", "complaint_stores",
                     "home_stores"):
            m[name].delete_many({"record_id": {"$in": ids}})
        # A number a phone change took off them stays noted as theirs until then (its keyed index, never the
        # number): their events from before the change are dropped, not given to the number's next holder.
        m["replaced_identifiers"].update_many({"record_id": {"$in": ids}}, {"$set": {"sealed": None}})
        m["assignments"].delete_many({"customer_id": {"$in": ids}})
        m["name_index"].delete_many({"_id": {"$in": ids}})  # the blind index of their names
        m["records"].delete_many({"_id": {"$in": ids}})
        m["merges"].delete_many({"$or": [{"survivor_id": {"$in": ids}}, {"merged_id": {"$in": ids}}]})
        m["merge_blocks"].delete_many({"$or": [{"a": {"$in": ids}}, {"b": {"$in": ids}}]})
        m["conflicts"].delete_many({"customer_ids": {"$in": ids}})

    def has_erasures(self) -> bool:
        """Whether anyone was ever erased (most batches need no pseudonym at all then)."""
        return self.mdb["erased_identifiers"].find_one({}, {"_id": 1}) is not None

    def erased(self, pseudonyms: list[str]) -> set[str]:
        """Which of these identifier pseudonyms belong to an erased customer."""
        if not pseudonyms:
            return set()
        return {d["_id"] for d in self.mdb["erased_identifiers"].find({"_id": {"$in": list(set(pseudonyms))}},
                                                                       {"_id": 1})}

    def erasure(self, erasure_id: str) -> ErasureRow | None:
        """One erasure."""
        d = self.mdb["erasures"].find_one({"_id": erasure_id})
        if d is None:
            return None
        return ErasureRow(d["_id"], d["customer_id"], tuple(d["records"]), d["reason"], d["requested_by"],
                          d["requested_at"], dict(d["confirmed"]))

    def confirm_erasure(self, erasure_id: str, *, service: str, at: str) -> bool:
        """Note that ``service`` confirmed (the first confirmation's time is kept); False when unknown."""
        if self.mdb["erasures"].find_one({"_id": erasure_id}, {"_id": 1}) is None:
            return False
        self.mdb["erasures"].update_one({"_id": erasure_id, f"confirmed.{service}": None},
                                        {"$set": {f"confirmed.{service}": at}})
        return True
