"""Campaigns' facts on MongoDB: what identity's and loyalty's events say, written in bulk, and read back
folded per customer (audiences, attribution, a period's sales).

Writes are upserts that only insert, or updates conditional on the value held (newer time, newer
version), so the server decides them atomically: a redelivered batch or a concurrent worker never
moves a value backwards. Bulk updates use ``UpdateMany`` on a filter that names the ``_id``: on a
server it is the same single-document write as ``UpdateOne``, which mongomock cannot take in
``bulk_write`` with this pymongo (mongomock issue 912).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Iterator
from typing import Any

from pymongo import UpdateMany

from services.campaigns.domain.attribution import Refund, Sale
from services.campaigns.domain.audience import CustomerFacts
from services.campaigns.store import SumsPeriodSales
from shared.contract.facts import FieldValue, PurchaseFact, RefundFact, newest
from shared.storage.base import ANON_PREFIX
from shared.storage.fact_tables import open_doc_field, seal_doc_field
from shared.storage.membership import Membership, newest_per_record

CHUNK = 5000  # ids per $in query: keeps every query document far below MongoDB's 16 MB limit


def fold_memberships(held: dict[str, tuple[str, str]], rows: Iterable[Membership]
                     ) -> tuple[dict[str, tuple[str, str]], set[str]]:
    """Apply mappings one at a time to those held (record → (customer, at)), by ``shared.storage.membership``'s
    rule (last writer wins by identity's time); returns the records whose mapping changed, with their
    new one, and every customer whose set of records changed."""
    state = dict(held)
    changed: dict[str, tuple[str, str]] = {}
    touched: set[str] = set()
    for m in rows:
        now = state.get(m.record_id)
        if now is not None and m.at <= now[1]:
            continue
        state[m.record_id] = changed[m.record_id] = (m.customer_id, m.at)
        if now is None:
            touched.add(m.customer_id)
        elif now[0] != m.customer_id:
            touched |= {now[0], m.customer_id}
    return changed, touched


def chunked(ids: Iterable[str]) -> Iterator[list[str]]:
    """Consecutive lists of at most ``CHUNK`` ids."""
    batch: list[str] = []
    for i in ids:
        batch.append(i)
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def key(*parts: str) -> str:
    """A document id made of several parts."""
    return "\x00".join(parts)


def _older(order: tuple[int, str, str]) -> dict:
    """Documents whose (time_ms, source, event_id) sorts strictly before ``order``."""
    ms, source, event_id = order
    return {"$or": [{"time_ms": {"$lt": ms}}, {"time_ms": ms, "source": {"$lt": source}},
                    {"time_ms": ms, "source": source, "event_id": {"$lt": event_id}}]}


class MongoFacts(SumsPeriodSales):
    """Facts per record and their owners, in the service's MongoDB database (needs ``self.mdb``)."""

    mdb: Any
    keys: Any

    def _records(self, customers: Collection[str]) -> dict[str, str]:
        """record id → customer for every record of these customers."""
        out: dict[str, str] = {}
        for chunk in chunked(customers):
            for d in self.mdb["memberships"].find({"customer_id": {"$in": chunk}}, {"customer_id": 1}):
                out[d["_id"]] = d["customer_id"]
        return out

    # -- facts, written in bulk: a batch costs a few round trips, not one per event -------
    def apply_memberships(self, rows: Iterable[Membership]) -> set[str]:
        """Record newer mappings; returns every customer whose set of records changed (old and new).

        The same rule as ``shared.storage.membership`` (last writer wins per record by identity's time), read in
        one query and written in one bulk: a batch of 500 events carries 1,000 mappings.
        """
        # Of a record's mappings in one call only the one kept counts, as in SQLite (``newest_per_record``):
        # applied one after another, a customer the record only passed through was reported changed.
        rows = list(newest_per_record(rows).values())
        coll = self.mdb["memberships"]
        held: dict[str, tuple[str, str]] = {}
        for chunk in chunked({m.record_id for m in rows}):
            held.update({d["_id"]: (d["customer_id"], d["at"]) for d in coll.find({"_id": {"$in": chunk}})})
        changed, touched = fold_memberships(held, rows)
        ops = []
        for record, (customer, at) in changed.items():
            doc = {"customer_id": customer, "at": at}
            ops += [UpdateMany({"_id": record}, {"$setOnInsert": doc}, upsert=True),
                    UpdateMany({"_id": record, "at": {"$lt": at}}, {"$set": doc})]
        if ops:
            coll.bulk_write(ops, ordered=True)
        return touched

    def seen_first(self, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Note events as processed; returns the ``(source, id)`` pairs not seen before."""
        coll, ids = self.mdb["seen"], {key(*k): k for k in keys}
        held: set[str] = set()
        for chunk in chunked(ids):
            held.update(d["_id"] for d in coll.find({"_id": {"$in": chunk}}, {"_id": 1}))
        fresh = {i: k for i, k in ids.items() if i not in held}
        if fresh:
            coll.bulk_write([UpdateMany({"_id": i}, {"$setOnInsert": {"seen": True}}, upsert=True) for i in fresh],
                            ordered=False)
        return set(fresh.values())

    def current_customers(self, ids: Collection[str]) -> dict[str, str]:
        """The customer each id belongs to now (an id never seen maps to itself)."""
        found: dict[str, str] = {}
        for chunk in chunked(ids):
            for d in self.mdb["memberships"].find({"_id": {"$in": chunk}}, {"customer_id": 1}):
                found[d["_id"]] = d["customer_id"]
        return {i: found.get(i, i) for i in ids}

    def _keep(self, name: str, docs: list[dict]) -> None:
        # Upserts that only insert: a fact held already (a redelivery after a crash) changes nothing.
        if docs:
            self.mdb[name].bulk_write([UpdateMany({"_id": i}, {"$setOnInsert": rest}, upsert=True)
                                       for i, rest in ((d["_id"], {k: v for k, v in d.items() if k != "_id"})
                                                       for d in docs)], ordered=False)

    def add_purchases(self, facts: list[PurchaseFact]) -> None:
        """Keep purchases (one already held changes nothing)."""
        self._keep("purchases", [
            {"_id": key(f.source, f.id), "source": f.source, "id": f.id, "record_id": f.record_id,
             "order_id": f.order_id, "amount_minor": f.amount_minor, "store_id": f.store_id, "time_ms": f.time_ms,
             "day": f.day, "categories": list(f.categories)} for f in facts])

    def add_refunds(self, facts: list[RefundFact]) -> None:
        """Keep refunds (one already held changes nothing)."""
        self._keep("refunds", [
            {"_id": key(f.source, f.id), "source": f.source, "id": f.id, "record_id": f.record_id,
             "order_id": f.order_id, "amount_minor": f.amount_minor, "time_ms": f.time_ms} for f in facts])

    def put_attributes(self, values: list[tuple[str, list[FieldValue]]]) -> None:
        """Keep each record's field values where they are newer than the ones held."""
        ops = []
        self.keys.prepare(record_id for record_id, _ in values)
        for record_id, vs in values:
            for v in vs:
                value = seal_doc_field(self.keys, record_id, v.field, v.value)
                doc = {"record_id": record_id, "field": v.field, "value": value, "time_ms": v.time_ms,
                       "source": v.source, "event_id": v.event_id}
                # Newest wins, ties ordered by source then event id; the server decides, so arrival order
                # and concurrent workers never move a value backwards.
                ops += [UpdateMany({"_id": key(record_id, v.field)}, {"$setOnInsert": doc}, upsert=True),
                        UpdateMany({"_id": key(record_id, v.field), **_older(v.order())}, {"$set": doc})]
        if ops:
            self.mdb["attributes"].bulk_write(ops, ordered=True)

    def put_tiers(self, rows: list[tuple[str, str | None, str]]) -> None:
        """Keep customers' loyalty tiers ``(customer, tier, version)`` where the version is newer."""
        ops = []
        for customer, tier, version in rows:
            doc = {"tier": tier, "version": version}
            ops += [UpdateMany({"_id": customer}, {"$setOnInsert": doc}, upsert=True),
                    UpdateMany({"_id": customer, "version": {"$lt": version}}, {"$set": doc})]
        if ops:
            self.mdb["tiers"].bulk_write(ops, ordered=True)

    def _owners(self, customers: Collection[str] | None) -> tuple[dict[str, str], list[str] | None]:
        """record → customer for the mappings a facts read folds, and the records whose facts it reads (None:
        every record). Restricted to some customers: their records, and those of them that are records no
        mapping names (a fact of such a record is its own customer's, as in the full read)."""
        if customers is None:
            return {d["_id"]: d["customer_id"] for d in self.mdb["memberships"].find({}, {"customer_id": 1})}, None
        owner = self._records(customers)
        for chunk in chunked(customers):
            owner.update({d["_id"]: d["customer_id"]
                          for d in self.mdb["memberships"].find({"_id": {"$in": chunk}}, {"customer_id": 1})})
        return owner, sorted({*owner, *(c for c in customers if c not in owner)})

    def _matching(self, records: list[str] | None, query: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """``query`` for every record, or for these records a chunk at a time."""
        if records is None:
            yield query
            return
        for chunk in chunked(records):
            yield {**query, "record_id": {"$in": chunk}}

    def customer_facts(self, *, as_of_ms: int, fields: Collection[str] | None = None,
                       categories: bool = True, customers: Collection[str] | None = None) -> list[CustomerFacts]:
        """Every active customer's facts up to a moment, folded over its records (only the profile
        ``fields`` asked for, all kept ones by default; categories bought only when asked; only the
        ``customers`` named, when named)."""
        owner, records = self._owners(customers)
        agg: dict[str, dict] = {c: {} for c in set(owner.values())}
        days: dict[str, set] = defaultdict(set)
        store_days: dict[tuple[str, str], set] = defaultdict(set)
        cats: dict[str, set] = defaultdict(set)
        counts: Counter = Counter()
        spend: Counter = Counter()
        last_ms: Counter = Counter()
        group: dict[str, Any] = {"_id": {"r": "$record_id", "s": "$store_id"}, "n": {"$sum": 1},
                                 "amount": {"$sum": "$amount_minor"}, "days": {"$addToSet": "$day"},
                                 "last": {"$max": "$time_ms"}}
        if categories:
            group["cats"] = {"$push": "$categories"}
        for match in self._matching(records, {"time_ms": {"$lte": as_of_ms}}):
            for g in self.mdb["purchases"].aggregate([{"$match": match}, {"$group": group}]):
                cid = owner.get(g["_id"]["r"], g["_id"]["r"])
                counts[cid] += g["n"]
                spend[cid] += g["amount"]
                last_ms[cid] = max(last_ms[cid], g["last"])
                days[cid].update(g["days"])
                if g["_id"].get("s") is not None:
                    store_days[(cid, g["_id"]["s"])].update(g["days"])
                if categories:
                    for listed in g["cats"]:
                        cats[cid].update(listed)
        for cid, seen in days.items():
            agg.setdefault(cid, {}).update(purchase_count=counts[cid], purchase_days=len(seen), first_day=min(seen),
                                           last_day=max(seen), spend_minor=spend[cid])
        for match in self._matching(records, {"time_ms": {"$lte": as_of_ms}}):
            for g in self.mdb["refunds"].aggregate([
                    {"$match": match},
                    {"$group": {"_id": "$record_id", "amount": {"$sum": "$amount_minor"},
                                "last": {"$max": "$time_ms"}}}]):
                cid = owner.get(g["_id"], g["_id"])
                held = agg.setdefault(cid, {})
                held["refund_minor"] = held.get("refund_minor", 0) + g["amount"]
                last_ms[cid] = max(last_ms[cid], g["last"])
        stores: dict[str, list] = defaultdict(list)
        for (cid, store), seen in store_days.items():
            stores[cid].append((store, len(seen), max(seen)))
        values: dict[str, list[FieldValue]] = defaultdict(list)
        query: dict[str, Any] = {"time_ms": {"$lte": as_of_ms}}
        if fields is not None:
            query["field"] = {"$in": sorted(fields)}
        docs = [d for match in self._matching(records, query) for d in self.mdb["attributes"].find(match)]
        self.keys.load({d["record_id"] for d in docs})
        for d in docs:
            value = open_doc_field(self.keys, d["record_id"], d["field"], d["value"])
            values[owner.get(d["record_id"], d["record_id"])].append(
                FieldValue(d["field"], value, d["time_ms"], d["source"], d["event_id"]))
        named = None if customers is None else set(customers)
        if named is None:
            tiers = {d["_id"]: d.get("tier") for d in self.mdb["tiers"].find({})}
        else:
            tiers = {d["_id"]: d.get("tier") for chunk in chunked(sorted(named))
                     for d in self.mdb["tiers"].find({"_id": {"$in": chunk}})}
        return [
            CustomerFacts(customer_id=cid, store_days=tuple(sorted(stores.get(cid, ()))),
                          categories=frozenset(cats.get(cid, ())), attributes=newest(values.get(cid, [])),
                          tier=tiers.get(cid), newest_ms=max([last_ms[cid]] + [v.time_ms for v in values.get(cid, [])]),
                          **fields)
            for cid, fields in sorted(agg.items())
            if not cid.startswith(ANON_PREFIX) and (named is None or cid in named)  # erased: in no audience
        ]

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
        for chunk in chunked(owner):
            query: dict[str, Any] = {"record_id": {"$in": chunk}, **({"time_ms": window} if window else {})}
            for d in self.mdb["purchases"].find(query):
                sales.append(Sale(owner[d["record_id"]], d["source"], d["id"], d["order_id"], d["amount_minor"],
                                  d["time_ms"], d["day"]))
            for d in self.mdb["refunds"].find({"record_id": {"$in": chunk}}):
                refunds.append(Refund(owner[d["record_id"]], d["source"], d["id"], d["order_id"], d["amount_minor"]))
        return sales, refunds

    def period_sales_of(self, customers: Collection[str] | None, *, since_ms: int,
                        until_ms: int) -> dict[str, tuple[int, int, int]]:
        """``period_sales`` per customer (of these customers, or of all): purchases, their sum and what was
        refunded of those orders; customers without a purchase in the period left out."""
        match: dict = {"time_ms": {"$gte": since_ms, "$lt": until_ms}}
        if customers is not None:
            # Their records as the whole read maps them: a customer's own id unless it belongs to another now.
            now = self.current_customers(list(customers))
            owned = {c: c for c in customers if now[c] == c} | self._records(customers)
            match["record_id"] = {"$in": sorted(owned)}
        bought: Counter = Counter()
        count: Counter = Counter()
        for g in self.mdb["purchases"].aggregate([
                {"$match": match},
                {"$group": {"_id": {"r": "$record_id", "o": "$order_id"}, "n": {"$sum": 1},
                            "a": {"$sum": "$amount_minor"}}}]):
            bought[(g["_id"]["r"], g["_id"]["o"])] += g["a"]
            count[(g["_id"]["r"], g["_id"]["o"])] += g["n"]
        owner = self.current_customers({r for r, _ in bought})
        orders: Counter = Counter()
        n: Counter = Counter()
        for (record, order), amount in bought.items():
            orders[(owner[record], order)] += amount
            n[owner[record]] += count[(record, order)]
        returned: Counter = Counter()
        for chunk in chunked(sorted({o for _, o in bought})):
            for g in self.mdb["refunds"].aggregate([
                    {"$match": {"order_id": {"$in": chunk}}},
                    {"$group": {"_id": {"r": "$record_id", "o": "$order_id"}, "a": {"$sum": "$amount_minor"}}}]):
                returned[(g["_id"]["r"], g["_id"]["o"])] += g["a"]
        back = self.current_customers({r for r, _ in returned})
        refunded: Counter = Counter()
        for (record, order), amount in returned.items():
            refunded[(back[record], order)] += amount
        out: dict[str, list[int]] = {}
        for (cust, order), amount in orders.items():
            acc = out.setdefault(cust, [n[cust], 0, 0])
            acc[1] += amount
            acc[2] += min(refunded[(cust, order)], amount)
        return {c: tuple(v) for c, v in out.items() if customers is None or c in customers}
