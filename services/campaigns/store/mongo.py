"""Campaigns' production store on MongoDB: the same operations as the SQLite store, bulk where it counts.

Facts (``store.mongo_facts``) are written a batch at a time and grouped on the server (``$group``);
launches write members, touches and view versions with ``insert_many`` / ``delete_many`` inside the
store transaction (a multi-document transaction on a replica set), never one document at a time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from typing import Any

from services.campaigns.domain.attribution import Enrolment
from services.campaigns.store import CampaignRow, MemberRow, TouchRow
from services.campaigns.store.changes import LogsChanges
from services.campaigns.store.leases import MongoLeases
from services.campaigns.store.mongo_facts import MongoFacts, chunked, key
from services.campaigns.store.mongo_receipts import MongoReceipts
from shared.storage.changes import MongoChanges
from shared.storage.membership import MongoMembership, anonymous_names
from shared.storage.outbox import MongoStore
from shared.storage.owners import MongoOwners

_CAMPAIGN_FIELDS = ("definition", "status", "created_at", "updated_at", "starts_at", "ends_at", "launched_at",
                    "launch", "paused_from", "last_error", "idempotency_key", "created_by")


def _campaign(doc: dict) -> CampaignRow:
    return CampaignRow(id=doc["_id"], **{f: doc.get(f) for f in _CAMPAIGN_FIELDS})


def _member(doc: dict, customer: str | None) -> MemberRow:
    return MemberRow(doc["campaign_id"], doc["member_id"], doc["group"], doc["at_ms"], doc["window_ms"],
                     doc["bucket"], doc.get("tier"), doc["age_band"], doc.get("home_store"), doc["returning"], customer,
                     purchases=doc.get("purchases"), touches_before=doc.get("touches_before"))


class _MongoCampaigns(MongoFacts, MongoStore, MongoMembership, MongoLeases, MongoOwners, MongoReceipts,
                      MongoChanges):
    """Campaigns data in a MongoDB database; writes join the current transaction."""

    def create_indexes(self) -> None:
        """The indexes this service's queries and idempotent writes rely on."""
        self.create_membership_indexes()
        self.create_owner_indexes()
        self.create_lease_indexes()
        self.create_receipt_indexes()
        self.mdb["purchases"].create_index([("record_id", 1), ("time_ms", 1)])
        self.mdb["purchases"].create_index("time_ms")  # a period's sales across every customer
        self.mdb["refunds"].create_index("record_id")
        self.mdb["refunds"].create_index("order_id")
        self.mdb["attributes"].create_index("record_id")
        self.mdb["campaigns"].create_index([("status", 1), ("starts_at", 1)])
        self.mdb["campaigns"].create_index("idempotency_key", unique=True,
                                           partialFilterExpression={"idempotency_key": {"$type": "string"}})
        self.mdb["members"].create_index([("campaign_id", 1), ("member_id", 1)])
        self.mdb["members"].create_index("member_id")
        self.mdb["touches"].create_index("at_ms")
        self.mdb["touches"].create_index("campaign_id")
        # a customer's touches (the preview's index, erasure), a few members' touches (kept results, exports)
        self.mdb["touches"].create_index("customer_id")

    # -- campaigns ------------------------------------------------------------------------
    def add_campaign(self, row: CampaignRow) -> None:
        """Store a new campaign."""
        self.mdb["campaigns"].insert_one({"_id": row.id, **{f: getattr(row, f) for f in _CAMPAIGN_FIELDS}})

    def campaign(self, campaign_id: str) -> CampaignRow | None:
        """One campaign."""
        doc = self.mdb["campaigns"].find_one({"_id": campaign_id})
        return _campaign(doc) if doc else None

    def campaign_by_key(self, key: str) -> CampaignRow | None:
        """The campaign created with an idempotency key."""
        doc = self.mdb["campaigns"].find_one({"idempotency_key": key})
        return _campaign(doc) if doc else None

    def campaigns(self, *, status: str | None, offset: int, limit: int) -> list[CampaignRow]:
        """Campaigns, newest first, optionally by status."""
        cur = self.mdb["campaigns"].find({"status": status} if status else {})
        return [_campaign(d) for d in cur.sort([("created_at", -1), ("_id", 1)]).skip(offset).limit(limit)]

    def campaign_count(self, *, status: str | None) -> int:
        """How many campaigns, optionally by status."""
        return self.mdb["campaigns"].count_documents({"status": status} if status else {})

    def update_campaign(self, campaign_id: str, *, expect_status: str, **changes: Any) -> bool:
        """Change a campaign if its status is still ``expect_status``; False when it is not."""
        done = self.mdb["campaigns"].update_one({"_id": campaign_id, "status": expect_status}, {"$set": changes})
        return done.matched_count == 1

    def due(self, *, now: str) -> tuple[list[str], list[str]]:
        """Scheduled campaigns whose start has come, launched ones (running or paused) whose end has come."""
        coll = self.mdb["campaigns"]
        start = coll.find({"status": "scheduled", "starts_at": {"$lte": now}}).sort([("starts_at", 1), ("_id", 1)])
        end = coll.find({"$or": [{"status": "running"}, {"status": "paused", "launched_at": {"$ne": None}}],
                         "ends_at": {"$lte": now}}).sort([("ends_at", 1), ("_id", 1)])
        return [d["_id"] for d in start], [d["_id"] for d in end]

    def campaign_names(self, ids: Collection[str]) -> dict[str, str]:
        """Names of campaigns by id."""
        docs = self.mdb["campaigns"].find({"_id": {"$in": list(ids)}}, {"definition.name": 1})
        return {d["_id"]: d["definition"]["name"] for d in docs}

    # -- audiences ------------------------------------------------------------------------
    def touch_counts(self, *, since_ms: int, until_ms: int) -> dict[str, int]:
        """Touches per customer (as they are now) in ``(since, until]``."""
        per_id = {g["_id"]: g["n"] for g in self.mdb["touches"].aggregate([
            {"$match": {"at_ms": {"$gt": since_ms, "$lte": until_ms}}},
            {"$group": {"_id": "$customer_id", "n": {"$sum": 1}}}])}
        now = self.current_customers(list(per_id))
        out: Counter = Counter()
        for cid, n in per_id.items():
            out[now[cid]] += n
        return dict(out)

    def customer_ids(self) -> list[str]:
        """Every customer a whole ``customer_facts`` read may return (and erased ones), to read a chunk at a time:
        the mapped customers, and the records no mapping names that hold a purchase or refund."""
        mapped = set(self.mdb["memberships"].distinct("_id"))
        loose = {r for name in ("purchases", "refunds") for r in self.mdb[name].distinct("record_id")} - mapped
        return sorted(set(self.mdb["memberships"].distinct("customer_id")) | loose)

    def touch_times(self, *, customers: Collection[str] | None = None,
                    campaigns: Collection[str] | None = None) -> list[tuple[str, int, str]]:
        """Every touch as (its customer as they are now, its time, its campaign); only those of the ``customers``
        named, or of the ``campaigns`` named, when named."""
        coll, fields = self.mdb["touches"], {"customer_id": 1, "at_ms": 1, "campaign_id": 1}
        if customers is None:
            query = {} if campaigns is None else {"campaign_id": {"$in": sorted(set(campaigns))}}
            held = [(d["customer_id"], d["at_ms"], d["campaign_id"]) for d in coll.find(query, fields)]
            now = self.current_customers({c for c, _, _ in held})
            return [(now[c], at, campaign) for c, at, campaign in held]
        # A customer's touches: those of its records, and those of its own id when no mapping names that id.
        owner = self._records(customers)
        mapped = {d["_id"] for chunk in chunked(customers)
                  for d in self.mdb["memberships"].find({"_id": {"$in": chunk}}, {"_id": 1})}
        owner.update({c: c for c in customers if c not in mapped})
        return [(owner[d["customer_id"]], d["at_ms"], d["campaign_id"]) for chunk in chunked(owner)
                for d in coll.find({"customer_id": {"$in": chunk}}, fields)]

    def _new_only(self, name: str, docs: list[dict]) -> set:
        coll = self.mdb[name]
        held: set = set()
        for chunk in chunked(d["_id"] for d in docs):
            held.update(d["_id"] for d in coll.find({"_id": {"$in": chunk}}, {"_id": 1}))
        fresh: dict = {}
        for d in docs:  # the first of two documents with one id, as an unordered insert would keep
            if d["_id"] not in held:
                fresh.setdefault(d["_id"], d)
        if fresh:
            coll.insert_many(list(fresh.values()), ordered=False)
        return set(fresh)

    def add_members(self, rows: list[MemberRow]) -> None:
        """Freeze audience members (a re-sent member changes nothing)."""
        self._new_only("members", [
            {"_id": key(r.campaign_id, r.member_id), "campaign_id": r.campaign_id, "member_id": r.member_id,
             "group": r.group, "at_ms": r.at_ms, "window_ms": r.window_ms, "bucket": r.bucket, "tier": r.tier,
             "age_band": r.age_band, "home_store": r.home_store, "returning": r.returning, "purchases": r.purchases,
             "touches_before": r.touches_before} for r in rows])

    def add_touches(self, rows: list[TouchRow]) -> set[str]:
        """Record touches (a re-sent touch id changes nothing); returns the ids recorded now."""
        # Every launch writes this one document: two launch transactions running at once conflict and
        # one is retried, so each counts the other's touches against the contact cap (on SQLite the
        # write lock does the same).
        self.mdb["counters"].update_one({"_id": "touch_writes"}, {"$inc": {"n": 1}}, upsert=True)
        return self._new_only("touches", [
            {"_id": t.touch_id, "campaign_id": t.campaign_id, "customer_id": t.customer_id, "channel": t.channel,
             "at_ms": t.at_ms, "step": t.step} for t in rows])

    def members(self, campaign_id: str, *, group: str | None = None, after: str | None = None,
                limit: int | None = None, owned_by: frozenset[str] | None = None) -> list[MemberRow]:
        """Members in member-id order, each with the customer it belongs to now (``owned_by``: only the
        members of customers those stores own)."""
        query: dict[str, Any] = {"campaign_id": campaign_id}
        if owned_by is not None:
            query["$and"] = [{"member_id": {"$in": self.owned_records(owned_by)}}]
        if group:
            query["group"] = group
        if after:
            query["member_id"] = {"$gt": after}
        cur = self.mdb["members"].find(query).sort("member_id", 1)
        docs = list(cur.limit(limit) if limit is not None else cur)
        now = self.current_customers([d["member_id"] for d in docs])
        return [_member(d, now[d["member_id"]]) for d in docs]

    def member_count(self, campaign_id: str, *, group: str | None = None,
                     owned_by: frozenset[str] | None = None) -> int:
        """How many members a campaign has, optionally in one group (and of customers ``owned_by`` stores)."""
        query: dict[str, Any] = {"campaign_id": campaign_id, **({"group": group} if group else {})}
        if owned_by is not None:
            query["member_id"] = {"$in": self.owned_records(owned_by)}
        return self.mdb["members"].count_documents(query)

    def touch_count(self, campaign_id: str) -> int:
        """How many touches a campaign sent."""
        return self.mdb["touches"].count_documents({"campaign_id": campaign_id})

    # -- attribution and the customer view ------------------------------------------------
    def enrolments(self, customers: Collection[str]) -> list[Enrolment]:
        """Every campaign membership of these customers (through any of their records)."""
        owner = self._records(customers)
        out = []
        for chunk in chunked(owner):
            for d in self.mdb["members"].find({"member_id": {"$in": chunk}}):
                out.append(Enrolment(d["campaign_id"], d["member_id"], owner[d["member_id"]], d["group"], d["at_ms"],
                                     d["window_ms"]))
        return out

    def view_hashes(self, customers: Collection[str]) -> dict[str, str]:
        """The fingerprint of each customer's last published campaigns part."""
        out = {}
        for chunk in chunked(customers):
            out.update({d["_id"]: d["hash"] for d in self.mdb["view_state"].find({"_id": {"$in": chunk}})})
        return out

    def save_views(self, hashes: dict[str, str], *, floor: int = 0) -> dict[str, int]:
        """Record newly published parts; returns each customer's next version (one more than the last,
        at least ``floor``)."""
        coll = self.mdb["view_state"]
        versions: dict[str, int] = {}
        for chunk in chunked(hashes):
            held = {d["_id"]: d["version"] for d in coll.find({"_id": {"$in": chunk}}, {"version": 1})}
            # Replace in bulk: delete and insert commit together inside the store transaction.
            if held:
                coll.delete_many({"_id": {"$in": list(held)}})
            docs = [{"_id": c, "version": max(held.get(c, 0) + 1, floor), "hash": hashes[c]} for c in chunk]
            coll.insert_many(docs, ordered=False)
            versions.update({d["_id"]: d["version"] for d in docs})
        return versions

    # -- issue 12, erasure (H4) ---------------------------------------------------------
    def erase_customer(self, customer_id: str, *, records: list[str], erasure_id: str, anon: str) -> list[str]:
        """Erase a customer: profile fields, tier and view state go; audience memberships, touches and the
        purchase and refund facts results count stay, each id renamed to an anonymous one (the same
        record -> customer shape), so every campaign's group sizes, conversions and sales stay exact.
        Returns the ids erased."""
        m = self.mdb
        ids = sorted({customer_id, *records, *self.records_of(customer_id)})
        renamed = anonymous_names(ids, customer_id=customer_id, anon=anon)
        m["attributes"].delete_many({"record_id": {"$in": ids}})
        for name in ("tiers", "view_state"):
            m[name].delete_many({"_id": {"$in": ids}})
        held = list(m["memberships"].find({"$or": [{"_id": {"$in": ids}}, {"customer_id": {"$in": ids}}]}))
        m["memberships"].delete_many({"_id": {"$in": [d["_id"] for d in held]}})
        for d in held:
            owner = renamed.get(d["customer_id"], d["customer_id"])
            m["memberships"].update_one({"_id": renamed.get(d["_id"], d["_id"])},
                                        {"$setOnInsert": {"customer_id": owner, "at": d["at"]}}, upsert=True)
        for old, new in renamed.items():
            m["purchases"].update_many({"record_id": old}, {"$set": {"record_id": new}})
            m["refunds"].update_many({"record_id": old}, {"$set": {"record_id": new}})
            m["touches"].update_many({"customer_id": old}, {"$set": {"customer_id": new}})
            # A member's id is part of its document id, which cannot change: the document is written anew.
            for d in list(m["members"].find({"member_id": old})):
                m["members"].insert_one({**d, "_id": key(d["campaign_id"], new), "member_id": new})
                m["members"].delete_one({"_id": d["_id"]})
        self.note_erased(ids, erasure_id=erasure_id)
        return ids


class MongoCampaignsStore(LogsChanges, _MongoCampaigns):
    """Campaigns data in a MongoDB database, each write logged in the store's log of changes (``store.changes``)."""
