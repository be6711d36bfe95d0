"""Campaigns' production store on MongoDB: the same operations as the SQLite store, bulk where it counts.

Per-record facts are grouped on the server (``$group``) and folded per customer here; launches
write members, touches and view versions with ``insert_many`` / ``delete_many`` inside the
store transaction (a multi-document transaction on a replica set), never one document at a time.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Iterator
from typing import Any

from services.campaigns.domain.attribution import Enrolment, Refund, Sale
from services.campaigns.domain.audience import CustomerFacts
from services.campaigns.domain.results import PeriodSales
from services.campaigns.store import CampaignRow, MemberRow, TouchRow
from services.campaigns.store_leases import MongoLeases
from shared.facts import FieldValue, PurchaseFact, RefundFact, newest
from shared.membership import MongoMembership
from shared.outbox import MongoStore

CHUNK = 5000  # ids per $in query: keeps every query document far below MongoDB's 16 MB limit
_CAMPAIGN_FIELDS = ("definition", "status", "created_at", "updated_at", "starts_at", "ends_at", "launched_at",
                    "launch", "paused_from", "last_error", "idempotency_key", "created_by")


def _chunks(ids: Iterable[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for i in ids:
        batch.append(i)
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def _key(*parts: str) -> str:
    return "\x00".join(parts)


def _campaign(doc: dict) -> CampaignRow:
    return CampaignRow(id=doc["_id"], **{f: doc.get(f) for f in _CAMPAIGN_FIELDS})


def _member(doc: dict, customer: str | None) -> MemberRow:
    return MemberRow(doc["campaign_id"], doc["member_id"], doc["group"], doc["at_ms"], doc["window_ms"],
                     doc["bucket"], doc.get("tier"), doc["age_band"], doc.get("home_store"), doc["returning"], customer,
                     purchases=doc.get("purchases"), touches_before=doc.get("touches_before"))


class MongoCampaignsStore(MongoStore, MongoMembership, MongoLeases):
    """Campaigns data in a MongoDB database; writes join the current transaction."""

    def create_indexes(self) -> None:
        """The indexes this service's queries and idempotent writes rely on."""
        self.create_membership_indexes()
        self.create_lease_indexes()
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

    def _records(self, customers: Collection[str]) -> dict[str, str]:
        """record id → customer for every record of these customers."""
        out: dict[str, str] = {}
        for chunk in _chunks(customers):
            for d in self.mdb["memberships"].find({"customer_id": {"$in": chunk}}, {"customer_id": 1}):
                out[d["_id"]] = d["customer_id"]
        return out

    # -- facts ----------------------------------------------------------------------------
    def mark_seen(self, source: str, event_id: str) -> bool:
        """Note an event as processed; False when it was seen before."""
        key = _key(source, event_id)
        if self.mdb["seen"].find_one({"_id": key}, {"_id": 1}):
            return False
        self.mdb["seen"].insert_one({"_id": key})
        return True

    def current_customers(self, ids: Collection[str]) -> dict[str, str]:
        """The customer each id belongs to now (an id never seen maps to itself)."""
        found: dict[str, str] = {}
        for chunk in _chunks(ids):
            for d in self.mdb["memberships"].find({"_id": {"$in": chunk}}, {"customer_id": 1}):
                found[d["_id"]] = d["customer_id"]
        return {i: found.get(i, i) for i in ids}

    def _insert_new(self, name: str, doc: dict) -> bool:
        if self.mdb[name].find_one({"_id": doc["_id"]}, {"_id": 1}):
            return False
        self.mdb[name].insert_one(doc)
        return True

    def add_purchase(self, fact: PurchaseFact) -> bool:
        """Keep a purchase; False when it is already held."""
        return self._insert_new("purchases", {
            "_id": _key(fact.source, fact.id), "source": fact.source, "id": fact.id, "record_id": fact.record_id,
            "order_id": fact.order_id, "amount_minor": fact.amount_minor, "store_id": fact.store_id,
            "time_ms": fact.time_ms, "day": fact.day, "categories": list(fact.categories)})

    def add_refund(self, fact: RefundFact) -> bool:
        """Keep a refund; False when it is already held."""
        return self._insert_new("refunds", {
            "_id": _key(fact.source, fact.id), "source": fact.source, "id": fact.id, "record_id": fact.record_id,
            "order_id": fact.order_id, "amount_minor": fact.amount_minor, "time_ms": fact.time_ms})

    def put_attributes(self, record_id: str, values: list[FieldValue]) -> bool:
        """Keep each field's value where it is newer than the one held; True if any changed."""
        coll = self.mdb["attributes"]
        ids = [_key(record_id, v.field) for v in values]
        held = {d["_id"]: d for d in coll.find({"_id": {"$in": ids}})}
        changed = False
        for key, v in zip(ids, values, strict=True):
            old = held.get(key)
            if old is not None and (old["time_ms"], old["source"], old["event_id"]) >= v.order():
                continue
            coll.update_one({"_id": key}, {"$set": {"record_id": record_id, "field": v.field, "value": v.value,
                                                    "time_ms": v.time_ms, "source": v.source,
                                                    "event_id": v.event_id}}, upsert=True)
            changed = True
        return changed

    def put_tier(self, customer_id: str, tier: str | None, *, version: str) -> bool:
        """Keep a customer's loyalty tier if this version is newer; True if it changed."""
        held = self.mdb["tiers"].find_one({"_id": customer_id})
        if held is not None and held["version"] >= version:
            return False
        self.mdb["tiers"].update_one({"_id": customer_id}, {"$set": {"tier": tier, "version": version}}, upsert=True)
        return True

    def customer_count(self) -> int:
        """How many active customers campaigns knows."""
        return len(self.mdb["memberships"].distinct("customer_id"))

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
        """Scheduled campaigns whose start has come, running ones whose end has come."""
        coll = self.mdb["campaigns"]
        start = coll.find({"status": "scheduled", "starts_at": {"$lte": now}}).sort([("starts_at", 1), ("_id", 1)])
        end = coll.find({"status": "running", "ends_at": {"$lte": now}}).sort([("ends_at", 1), ("_id", 1)])
        return [d["_id"] for d in start], [d["_id"] for d in end]

    def campaign_names(self, ids: Collection[str]) -> dict[str, str]:
        """Names of campaigns by id."""
        docs = self.mdb["campaigns"].find({"_id": {"$in": list(ids)}}, {"definition.name": 1})
        return {d["_id"]: d["definition"]["name"] for d in docs}

    # -- audiences ------------------------------------------------------------------------
    def customer_facts(self, *, as_of_ms: int, fields: Collection[str] | None = None,
                       categories: bool = True) -> list[CustomerFacts]:
        """Every active customer's facts up to a moment, folded over its records (only the profile
        ``fields`` asked for, all kept ones by default; categories bought only when asked)."""
        owner = {d["_id"]: d["customer_id"] for d in self.mdb["memberships"].find({}, {"customer_id": 1})}
        agg: dict[str, dict] = {c: {} for c in set(owner.values())}
        days: dict[str, set] = defaultdict(set)
        store_days: dict[tuple[str, str], set] = defaultdict(set)
        cats: dict[str, set] = defaultdict(set)
        counts: Counter = Counter()
        spend: Counter = Counter()
        group: dict[str, Any] = {"_id": {"r": "$record_id", "s": "$store_id"}, "n": {"$sum": 1},
                                 "amount": {"$sum": "$amount_minor"}, "days": {"$addToSet": "$day"}}
        if categories:
            group["cats"] = {"$push": "$categories"}
        for g in self.mdb["purchases"].aggregate([{"$match": {"time_ms": {"$lte": as_of_ms}}}, {"$group": group}]):
            cid = owner.get(g["_id"]["r"], g["_id"]["r"])
            counts[cid] += g["n"]
            spend[cid] += g["amount"]
            days[cid].update(g["days"])
            if g["_id"].get("s") is not None:
                store_days[(cid, g["_id"]["s"])].update(g["days"])
            if categories:
                for listed in g["cats"]:
                    cats[cid].update(listed)
        for cid, seen in days.items():
            agg.setdefault(cid, {}).update(purchase_count=counts[cid], purchase_days=len(seen), first_day=min(seen),
                                           last_day=max(seen), spend_minor=spend[cid])
        for g in self.mdb["refunds"].aggregate([
                {"$match": {"time_ms": {"$lte": as_of_ms}}},
                {"$group": {"_id": "$record_id", "amount": {"$sum": "$amount_minor"}}}]):
            held = agg.setdefault(owner.get(g["_id"], g["_id"]), {})
            held["refund_minor"] = held.get("refund_minor", 0) + g["amount"]
        stores: dict[str, list] = defaultdict(list)
        for (cid, store), seen in store_days.items():
            stores[cid].append((store, len(seen), max(seen)))
        values: dict[str, list[FieldValue]] = defaultdict(list)
        query: dict[str, Any] = {"time_ms": {"$lte": as_of_ms}}
        if fields is not None:
            query["field"] = {"$in": sorted(fields)}
        for d in self.mdb["attributes"].find(query):
            values[owner.get(d["record_id"], d["record_id"])].append(
                FieldValue(d["field"], d["value"], d["time_ms"], d["source"], d["event_id"]))
        tiers = {d["_id"]: d.get("tier") for d in self.mdb["tiers"].find({})}
        return [
            CustomerFacts(customer_id=cid, store_days=tuple(sorted(stores.get(cid, ()))),
                          categories=frozenset(cats.get(cid, ())), attributes=newest(values.get(cid, [])),
                          tier=tiers.get(cid), **fields)
            for cid, fields in sorted(agg.items())
        ]

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

    def _new_only(self, name: str, docs: list[dict]) -> None:
        coll = self.mdb[name]
        held: set = set()
        for chunk in _chunks(d["_id"] for d in docs):
            held.update(d["_id"] for d in coll.find({"_id": {"$in": chunk}}, {"_id": 1}))
        fresh = [d for d in docs if d["_id"] not in held]
        if fresh:
            coll.insert_many(fresh, ordered=False)

    def add_members(self, rows: list[MemberRow]) -> None:
        """Freeze audience members (a re-sent member changes nothing)."""
        self._new_only("members", [
            {"_id": _key(r.campaign_id, r.member_id), "campaign_id": r.campaign_id, "member_id": r.member_id,
             "group": r.group, "at_ms": r.at_ms, "window_ms": r.window_ms, "bucket": r.bucket, "tier": r.tier,
             "age_band": r.age_band, "home_store": r.home_store, "returning": r.returning, "purchases": r.purchases,
             "touches_before": r.touches_before} for r in rows])

    def add_touches(self, rows: list[TouchRow]) -> None:
        """Record touches (a re-sent touch id changes nothing)."""
        # Every launch writes this one document: two launch transactions running at once conflict and
        # one is retried, so each counts the other's touches against the contact cap (on SQLite the
        # write lock does the same).
        self.mdb["counters"].update_one({"_id": "touch_writes"}, {"$inc": {"n": 1}}, upsert=True)
        self._new_only("touches", [
            {"_id": t.touch_id, "campaign_id": t.campaign_id, "customer_id": t.customer_id, "channel": t.channel,
             "at_ms": t.at_ms} for t in rows])

    def members(self, campaign_id: str, *, group: str | None = None, after: str | None = None,
                limit: int | None = None) -> list[MemberRow]:
        """Members in member-id order, each with the customer it belongs to now."""
        query: dict[str, Any] = {"campaign_id": campaign_id}
        if group:
            query["group"] = group
        if after:
            query["member_id"] = {"$gt": after}
        cur = self.mdb["members"].find(query).sort("member_id", 1)
        docs = list(cur.limit(limit) if limit is not None else cur)
        now = self.current_customers([d["member_id"] for d in docs])
        return [_member(d, now[d["member_id"]]) for d in docs]

    def member_count(self, campaign_id: str, *, group: str | None = None) -> int:
        """How many members a campaign has, optionally in one group."""
        return self.mdb["members"].count_documents({"campaign_id": campaign_id, **({"group": group} if group else {})})

    def touch_count(self, campaign_id: str) -> int:
        """How many touches a campaign sent."""
        return self.mdb["touches"].count_documents({"campaign_id": campaign_id})

    # -- attribution and the customer view ------------------------------------------------
    def enrolments(self, customers: Collection[str]) -> list[Enrolment]:
        """Every campaign membership of these customers (through any of their records)."""
        owner = self._records(customers)
        out = []
        for chunk in _chunks(owner):
            for d in self.mdb["members"].find({"member_id": {"$in": chunk}}):
                out.append(Enrolment(d["campaign_id"], d["member_id"], owner[d["member_id"]], d["group"], d["at_ms"],
                                     d["window_ms"]))
        return out

    def sales(self, customers: Collection[str], *, since_ms: int | None = None,
              until_ms: int | None = None) -> tuple[list[Sale], list[Refund]]:
        """Purchases of these customers in ``[since, until)`` and every refund they made."""
        owner = self._records(customers)
        window: dict[str, int] = {}
        if since_ms is not None:
            window["$gte"] = since_ms
        if until_ms is not None:
            window["$lt"] = until_ms
        sales, refunds = [], []
        for chunk in _chunks(owner):
            query: dict[str, Any] = {"record_id": {"$in": chunk}, **({"time_ms": window} if window else {})}
            for d in self.mdb["purchases"].find(query):
                sales.append(Sale(owner[d["record_id"]], d["source"], d["id"], d["order_id"], d["amount_minor"],
                                  d["time_ms"], d["day"]))
            for d in self.mdb["refunds"].find({"record_id": {"$in": chunk}}):
                refunds.append(Refund(owner[d["record_id"]], d["source"], d["id"], d["order_id"], d["amount_minor"]))
        return sales, refunds

    def period_sales(self, *, since_ms: int, until_ms: int) -> PeriodSales:
        """Every customer's purchases in ``[since, until)``, and the refunds of those orders (capped at each order)."""
        bought: Counter = Counter()
        count: Counter = Counter()
        for g in self.mdb["purchases"].aggregate([
                {"$match": {"time_ms": {"$gte": since_ms, "$lt": until_ms}}},
                {"$group": {"_id": {"r": "$record_id", "o": "$order_id"}, "n": {"$sum": 1},
                            "a": {"$sum": "$amount_minor"}}}]):
            bought[(g["_id"]["r"], g["_id"]["o"])] += g["a"]
            count[(g["_id"]["r"], g["_id"]["o"])] += g["n"]
        owner = self.current_customers({r for r, _ in bought})
        orders: Counter = Counter()
        for (record, order), amount in bought.items():
            orders[(owner[record], order)] += amount
        returned: Counter = Counter()
        for chunk in _chunks(sorted({o for _, o in bought})):
            for g in self.mdb["refunds"].aggregate([
                    {"$match": {"order_id": {"$in": chunk}}},
                    {"$group": {"_id": {"r": "$record_id", "o": "$order_id"}, "a": {"$sum": "$amount_minor"}}}]):
                returned[(g["_id"]["r"], g["_id"]["o"])] += g["a"]
        back = self.current_customers({r for r, _ in returned})
        refunded: Counter = Counter()
        for (record, order), amount in returned.items():
            refunded[(back[record], order)] += amount
        capped = sum(min(refunded[key], amount) for key, amount in orders.items())
        return PeriodSales(since_ms, until_ms, sum(count.values()), sum(orders.values()), capped)

    def view_hashes(self, customers: Collection[str]) -> dict[str, str]:
        """The fingerprint of each customer's last published campaigns part."""
        out = {}
        for chunk in _chunks(customers):
            out.update({d["_id"]: d["hash"] for d in self.mdb["view_state"].find({"_id": {"$in": chunk}})})
        return out

    def save_views(self, hashes: dict[str, str]) -> dict[str, int]:
        """Record newly published parts; returns each customer's next version (a per-customer counter)."""
        coll = self.mdb["view_state"]
        versions: dict[str, int] = {}
        for chunk in _chunks(hashes):
            held = {d["_id"]: d["version"] for d in coll.find({"_id": {"$in": chunk}}, {"version": 1})}
            # Replace in bulk: delete and insert commit together inside the store transaction.
            if held:
                coll.delete_many({"_id": {"$in": list(held)}})
            docs = [{"_id": c, "version": held.get(c, 0) + 1, "hash": hashes[c]} for c in chunk]
            coll.insert_many(docs, ordered=False)
            versions.update({d["_id"]: d["version"] for d in docs})
        return versions
