"""The alerts service's production store: MongoDB through pymongo, bulk writes, indexes made at open."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from pymongo import ASCENDING, DESCENDING, ReplaceOne, UpdateOne

from services.alerts.domain.facts import CustomerFacts
from services.alerts.domain.workflow import ACTIVE, Alert
from services.alerts.store import AlertQuery, Cover, ExpiryRow, LoyaltyRow, OccurrenceRow, StoredModel
from services.alerts.store.codec import (
    FactRows,
    alert_doc,
    alert_of,
    assemble,
    model_doc,
    model_of,
    newest_loyalty,
    took_us,
)
from services.alerts.store.mongo_attendance import MongoAttendance
from services.alerts.store.mongo_clv import MongoClv
from services.alerts.store.mongo_kpi import MongoKpi
from services.alerts.store.mongo_satisfaction import MongoSatisfaction
from services.alerts.store.mongo_value import MongoValue
from services.alerts.store.value_regroup import RegroupsValue
from shared.churn import ChurnModel
from shared.contract.facts import FieldValue, PurchaseFact, RefundFact
from shared.storage.base import MongoDb
from shared.storage.fact_tables import mongo_insert_new, open_doc_field, seal_doc_field
from shared.storage.membership import MongoMembership
from shared.storage.outbox import MongoStore
from shared.storage.owners import MongoOwners


def _bulk(coll, ops: list, *, mock: bool) -> None:
    """One bulk write; mongomock cannot take pymongo's bulk operations (pymongo >= 4.9 passes ``sort``),
    so there, and only there, the same operations are applied one by one."""
    if not ops:
        return
    if not mock:
        coll.bulk_write(ops, ordered=True)
        return
    for op in ops:
        if isinstance(op, ReplaceOne):
            coll.replace_one(op._filter, op._doc, upsert=op._upsert)
        else:
            coll.update_one(op._filter, op._doc, upsert=op._upsert)


def _doc(alert: Alert, keys) -> dict:
    doc = alert_doc(alert, keys=keys)
    doc["_id"] = doc["alert_id"]
    doc["took_us"] = took_us(alert)  # what the SLA filter compares for a resolved alert
    if alert.active:
        doc["open_key"] = f"{alert.customer_id}\0{alert.type}"  # unique: one open alert per customer and type
    return doc


def _fresh(rows: list, new: set) -> list:
    """The rows whose (source, id) was just inserted, each once."""
    left, out = set(new), []
    for r in rows:
        if (k := f"{r.source}\0{r.id}") in left:
            left.discard(k)
            out.append(r)
    return out


def _alert(doc: dict, keys) -> Alert:
    return alert_of(doc, keys=keys)


class MongoAlertsStore(RegroupsValue, MongoStore, MongoMembership, MongoOwners,
                       MongoClv, MongoAttendance, MongoSatisfaction, MongoKpi, MongoValue):  # issue 15: reports
    """Alerts data in the service's MongoDB database; writes join the current transaction."""

    def __init__(self, mdb: MongoDb, **options) -> None:
        self._mock = type(mdb.database).__module__.startswith("mongomock")
        super().__init__(mdb, **options)
        self.kpi_backfill()  # issue 15: first purchase days of records kept before the KPI aggregates
        # Issue 15: purchases kept before the customer-value aggregate. Outside a transaction: a history of a
        # million purchases is far beyond what one MongoDB transaction may write; the upserts only insert and
        # the mark comes last, so an interrupted backfill is finished by the next opening.
        self.backfill_value()

    def create_indexes(self) -> None:
        """The indexes this service's queries and idempotent writes rely on."""
        self.create_membership_indexes()
        self.create_owner_indexes()
        self.create_satisfaction_indexes()  # issue 15
        self.create_kpi_indexes()  # issue 15
        self.create_value_indexes()
        self.mdb["purchases"].create_index("record_id")
        self.mdb["refunds"].create_index("record_id")
        self.mdb["occurrences"].create_index("record_id")
        self.mdb["expiries"].create_index("record_id")
        self.mdb["attributes"].create_index("record_id")
        self.mdb["alerts"].create_index([("customer_id", ASCENDING), ("status", ASCENDING), ("type", ASCENDING)])
        self.mdb["alerts"].create_index("origin_id")
        self.mdb["alerts"].create_index([("status", ASCENDING), ("opened_at", DESCENDING)])
        self.mdb["alerts"].create_index([("store_id", ASCENDING), ("status", ASCENDING), ("opened_at", DESCENDING)])
        self.mdb["due"].create_index([("due_ms", ASCENDING), ("_id", ASCENDING)])
        # Only active alerts carry open_key: the store itself holds one open alert per customer and type.
        self.mdb["alerts"].create_index("open_key", unique=True, sparse=True)
        self.create_attendance_indexes()  # issue 15

    def _insert_new(self, name: str, docs: list[dict]) -> set:
        return mongo_insert_new(self.mdb[name], docs)

    # -- facts --------------------------------------------------------------------------
    def seen_events(self, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these channel events (source, id) were processed before."""
        if not keys:
            return set()
        ids = {f"{s}\0{i}": (s, i) for s, i in keys}
        return {ids[d["_id"]] for d in self.mdb["seen_events"].find({"_id": {"$in": list(ids)}}, {"_id": 1})}

    def add_events(self, keys: list[tuple[str, str]]) -> None:
        """Note channel events as processed."""
        self._insert_new("seen_events", [{"_id": f"{s}\0{i}"} for s, i in keys])

    def add_purchases(self, rows: list[PurchaseFact]) -> None:
        """Purchases of records (and the store KPIs' and customer-value aggregates, issue 15)."""
        new = self._insert_new("purchases", [{"_id": f"{r.source}\0{r.id}", "record_id": r.record_id, "day": r.day,
                                              "store_id": r.store_id, "amount_minor": r.amount_minor} for r in rows])
        self.kpi_add(rows, [])  # issue 15: the store KPIs' aggregates, in the same transaction
        self.keep_value_purchases(_fresh(rows, new))

    def add_refunds(self, rows: list[RefundFact]) -> None:
        """Refunds of records (and the store KPIs' and customer-value aggregates, issue 15)."""
        new = self._insert_new("refunds", [{"_id": f"{r.source}\0{r.id}", "record_id": r.record_id,
                                            "amount_minor": r.amount_minor} for r in rows])
        self.kpi_add([], rows)  # issue 15: the store KPIs' aggregates, in the same transaction
        self.keep_value_refunds(_fresh(rows, new))

    def add_occurrences(self, rows: list[OccurrenceRow]) -> set[str]:
        """Complaints, surveys, upgrades, expired points; returns the keys that were new."""
        return self._insert_new("occurrences", [{"_id": r.key, "kind": r.kind, "record_id": r.record_id,
                                                 "at_ms": r.at_ms, "store_id": r.store_id, "value": r.value}
                                                for r in rows])

    def add_expiries(self, rows: list[ExpiryRow]) -> set[str]:
        """Expiry announcements; returns the keys that were new."""
        return self._insert_new("expiries", [{"_id": r.key, "record_id": r.record_id, "points": r.points,
                                              "expires_ms": r.expires_ms} for r in rows])

    def put_attributes(self, items: list[tuple[str, list[FieldValue]]]) -> None:
        """Set fields of records where the value is newer than the one held."""
        newest: dict[str, tuple[str, FieldValue]] = {}
        for record, values in items:
            for v in values:
                _id = f"{record}\0{v.field}"
                if _id not in newest or v.order() > newest[_id][1].order():
                    newest[_id] = (record, v)
        if not newest:
            return
        coll = self.mdb["attributes"]
        held = {d["_id"]: (d["time_ms"], d["source"], d["event_id"]) for d in coll.find({"_id": {"$in": list(newest)}})}
        self.keys.prepare(record for record, _ in newest.values())
        ops = [ReplaceOne({"_id": _id}, {"record_id": record, "field": v.field,
                                         "value": seal_doc_field(self.keys, record, v.field, v.value),
                                         "time_ms": v.time_ms, "source": v.source, "event_id": v.event_id},
                          upsert=True)
               for _id, (record, v) in newest.items() if _id not in held or v.order() > held[_id]]
        _bulk(coll, ops, mock=self._mock)

    def put_loyalty(self, rows: list[LoyaltyRow]) -> list[LoyaltyRow]:
        """Loyalty's parts of records, each kept if newer than the one held; returns those kept."""
        if not rows:
            return []
        coll = self.mdb["loyalty"]
        held = {d["_id"]: d["version"] for d in coll.find({"_id": {"$in": list({r.record_id for r in rows})}},
                                                          {"version": 1})}
        kept = newest_loyalty(rows, held)
        _bulk(coll, [ReplaceOne({"_id": r.record_id}, {"tier": r.tier, "balance": r.balance, "version": r.version},
                                upsert=True) for r in kept], mock=self._mock)
        return kept

    def customers_of(self, record_ids: list[str]) -> dict[str, str]:
        """The customer each record belongs to now (itself if never seen)."""
        out = {r: r for r in record_ids}
        if record_ids:
            out.update((d["_id"], d["customer_id"]) for d in self.mdb["memberships"].find({"_id": {"$in": record_ids}}))
        return out

    def merged_away(self, ids: list[str]) -> set[str]:
        """Which of these ids are records now part of another customer."""
        return {d["_id"] for d in self.mdb["memberships"].find({"_id": {"$in": ids}}) if d["customer_id"] != d["_id"]}

    def members(self, customer_ids: list[str]) -> dict[str, str]:
        """Every record of these customers now, and the customer it belongs to (each customer's own included)."""
        out = {c: c for c in customer_ids}
        for d in self.mdb["memberships"].find({"customer_id": {"$in": customer_ids}}):
            out.setdefault(d["_id"], d["customer_id"])
        return out

    def facts(self, customer_ids: list[str]) -> dict[str, CustomerFacts]:
        """Each customer's facts, over every record that makes it up now (bulk reads)."""
        owner = self.members(customer_ids)
        rows = {c: FactRows([], [], 0, [], [], [], []) for c in customer_ids}
        q = {"record_id": {"$in": list(owner)}}
        for d in self.mdb["purchases"].find(q):
            rows[owner[d["record_id"]]].purchases.append((d["day"], d["store_id"], d["amount_minor"]))
        for d in self.mdb["refunds"].find(q):
            rows[owner[d["record_id"]]].refunds += d["amount_minor"]
        for d in self.mdb["occurrences"].find(q):
            rows[owner[d["record_id"]]].occurrences.append(
                OccurrenceRow(d["kind"], d["_id"], d["record_id"], d["at_ms"], d["store_id"], d["value"]))
        for d in self.mdb["expiries"].find(q):
            rows[owner[d["record_id"]]].expiries.append(ExpiryRow(d["_id"], d["record_id"], d["points"],
                                                                  d["expires_ms"]))
        attributes = list(self.mdb["attributes"].find(q))
        if attributes:  # the data keys of the records with fields to open, not of every record
            self.keys.load({d["record_id"] for d in attributes})
        for d in attributes:
            value = open_doc_field(self.keys, d["record_id"], d["field"], d["value"])
            rows[owner[d["record_id"]]].attributes.append(
                FieldValue(d["field"], value, d["time_ms"], d["source"], d["event_id"]))
        for d in self.mdb["loyalty"].find({"_id": {"$in": list(owner)}}):
            rows[owner[d["_id"]]].loyalty.append(LoyaltyRow(d["_id"], d["tier"], d["balance"], d["version"]))
        # The latest resolution per customer and type, aggregated by the server (a customer's history grows).
        match = {"customer_id": {"$in": customer_ids}, "status": "resolved", "resolution": {"$ne": "merged"}}
        group = {"_id": {"c": "$customer_id", "t": "$type"}, "at": {"$max": "$resolved_at"}}
        for d in self.mdb["alerts"].aggregate([{"$match": match}, {"$group": group}]):
            rows[d["_id"]["c"]].last_resolved[d["_id"]["t"]] = d["at"]
        return {c: assemble(c, r) for c, r in rows.items()}

    def purchase_days(self, *, until: date, customer_id: str | None = None) -> dict[str, list[date]]:
        """Distinct purchase days up to ``until`` of every customer (or one), through the membership mapping."""
        q: dict = {"day": {"$lte": until.isoformat()}}
        if customer_id is not None:
            q["record_id"] = {"$in": self.records_of(customer_id)}
            owner = None
        else:
            owner = {d["_id"]: d["customer_id"] for d in self.mdb["memberships"].find({}, {"customer_id": 1})}
        days: dict[str, set[str]] = defaultdict(set)
        for d in self.mdb["purchases"].find(q, {"record_id": 1, "day": 1}):
            cust = customer_id if owner is None else owner.get(d["record_id"], d["record_id"])
            days[cust].add(d["day"])
        return {c: sorted(date.fromisoformat(x) for x in v) for c, v in days.items()}

    # -- alerts -------------------------------------------------------------------------
    def put_alerts(self, alerts: list[Alert]) -> None:
        """Insert or replace alerts."""
        if alerts:
            ops = [ReplaceOne({"_id": a.alert_id}, _doc(a, self.keys), upsert=True) for a in alerts]
            _bulk(self.mdb["alerts"], ops, mock=self._mock)

    def cover(self, triggers: list[tuple[str, str]]) -> None:
        """Mark triggers as answered by an alert (taking them over from the one that answered them before)."""
        if triggers:
            _bulk(self.mdb["alert_triggers"],
                  [UpdateOne({"_id": k}, {"$set": {"alert_id": a}}, upsert=True) for k, a in triggers],
                  mock=self._mock)

    def covered(self, keys: list[str]) -> dict[str, Cover]:
        """Which of these triggers an alert answered already, and which alert."""
        if not keys:
            return {}
        by_key = {d["_id"]: d["alert_id"] for d in self.mdb["alert_triggers"].find({"_id": {"$in": keys}})}
        held = {d["_id"]: d for d in self.mdb["alerts"].find({"_id": {"$in": list(set(by_key.values()))}},
                                                              {"customer_id": 1, "status": 1})}
        return {k: Cover(a, held[a]["customer_id"], held[a]["status"] in ACTIVE) for k, a in by_key.items()
                if a in held}

    def active_alerts(self, customer_ids: list[str]) -> list[Alert]:
        """Open and acknowledged alerts of these customers."""
        cur = self.mdb["alerts"].find({"customer_id": {"$in": customer_ids}, "status": {"$in": list(ACTIVE)}})
        return [_alert(d, self.keys) for d in cur]

    def alerts_from(self, origin_ids: list[str]) -> list[Alert]:
        """Active or merge-folded alerts raised for these customers."""
        cur = self.mdb["alerts"].find({"origin_id": {"$in": origin_ids},
                                       "$or": [{"status": {"$in": list(ACTIVE)}}, {"resolution": "merged"}]})
        return [_alert(d, self.keys) for d in cur]

    def alert(self, alert_id: str) -> Alert | None:
        """One alert."""
        d = self.mdb["alerts"].find_one({"_id": alert_id})
        return _alert(d, self.keys) if d else None

    def find_alerts(self, query: AlertQuery, *, offset: int, limit: int) -> tuple[list[Alert], int]:
        """Alerts matching the filters, newest opened first, and how many match."""
        q: dict = {k: v for k in ("status", "type", "severity", "store_id", "manager")
                   if (v := getattr(query, k)) is not None}
        if query.customer_ids is not None:
            q["customer_id"] = {"$in": list(query.customer_ids)}
        if query.sla is not None:
            late = [c for s, before in query.sla.opened_before.items()
                    for c in ({"severity": s, "status": {"$in": list(ACTIVE)}, "opened_at": {"$lt": before}},
                              {"severity": s, "status": "resolved", "took_us": {"$gt": query.sla.limit_us[s]}})]
            q["$or" if query.sla.breached else "$nor"] = late
        if query.owned_by is not None:
            q.setdefault("$and", []).append({"customer_id": {"$in": self.owned_records(query.owned_by)}})
        coll = self.mdb["alerts"]
        cur = coll.find(q).sort([("opened_at", DESCENDING), ("_id", ASCENDING)]).skip(offset).limit(limit)
        return [_alert(d, self.keys) for d in cur], coll.count_documents(q)

    def next_versions(self, customer_ids: list[str], *, floor: int = 0) -> dict[str, int]:
        """Advance and return each customer's view-part version: one more than the last, at least ``floor``."""
        if not customer_ids:
            return {}
        coll = self.mdb["view_versions"]
        # max(n + 1, floor) as two ordered updates: raise to floor - 1, then add one.
        raise_to = {"$max": {"n": max(floor - 1, 0)}}
        ops = [op for c in customer_ids
               for op in (UpdateOne({"_id": c}, raise_to, upsert=True), UpdateOne({"_id": c}, {"$inc": {"n": 1}}))]
        _bulk(coll, ops, mock=self._mock)
        return {d["_id"]: int(d["n"]) for d in coll.find({"_id": {"$in": customer_ids}})}

    # -- scheduling ---------------------------------------------------------------------
    def set_due(self, due: dict[str, int | None]) -> None:
        """When each customer needs a look next (None: only when a fact arrives)."""
        if due:
            _bulk(self.mdb["due"], [UpdateOne({"_id": c}, {"$set": {"due_ms": ms}}, upsert=True)
                                    for c, ms in due.items()], mock=self._mock)

    def due_customers(self, *, until_ms: int, limit: int) -> list[str]:
        """Customers due by ``until_ms``, earliest first."""
        cur = self.mdb["due"].find({"due_ms": {"$ne": None, "$lte": until_ms}}).sort(
            [("due_ms", ASCENDING), ("_id", ASCENDING)]).limit(limit)
        return [d["_id"] for d in cur]

    def customers_after(self, after: str, *, limit: int) -> list[str]:
        """Every known customer in id order (a full rescan), after ``after``."""
        cur = self.mdb["due"].find({"_id": {"$gt": after}}, {"_id": 1}).sort("_id", ASCENDING).limit(limit)
        return [d["_id"] for d in cur]

    def due_count(self, *, until_ms: int) -> int:
        """How many customers are due by ``until_ms``."""
        return self.mdb["due"].count_documents({"due_ms": {"$ne": None, "$lte": until_ms}})

    def acquire_lease(self, name: str, *, owner: str, now_ms: int, ttl_ms: int) -> bool:
        """Hold lease ``name`` until now + ttl if it is free, expired or already ours."""
        from pymongo.errors import DuplicateKeyError

        coll = self.mdb["leases"]
        try:
            res = coll.update_one({"_id": name, "$or": [{"until_ms": {"$lt": now_ms}}, {"owner": owner}]},
                                  {"$set": {"owner": owner, "until_ms": now_ms + ttl_ms}}, upsert=True)
        except DuplicateKeyError:  # held by another worker: the filter missed and the upsert collided
            return False
        return res.matched_count == 1 or res.upserted_id is not None

    def get_mark(self, name: str) -> str | None:
        """A small piece of the scheduler's state (the rules last scanned with, a full scan's cursor)."""
        d = self.mdb["marks"].find_one({"_id": name})
        return d["value"] if d else None

    def put_mark(self, name: str, value: str) -> None:
        """Set a piece of the scheduler's state."""
        self.mdb["marks"].replace_one({"_id": name}, {"value": value}, upsert=True)

    # -- churn model --------------------------------------------------------------------
    def put_model(self, model: ChurnModel, *, fitted_at: str) -> None:
        """Keep a fitted model for its as-of date."""
        self.mdb["models"].replace_one({"_id": model.as_of.isoformat()}, {**model_doc(model), "fitted_at": fitted_at},
                                       upsert=True)

    def model(self, as_of: date) -> StoredModel | None:
        """The model fitted as of a date, if any."""
        d = self.mdb["models"].find_one({"_id": as_of.isoformat()})
        return StoredModel(model_of(d), d["fitted_at"]) if d else None

    def latest_model(self, *, until: date) -> StoredModel | None:
        """The model with the latest as-of date up to ``until``."""
        docs = list(self.mdb["models"].find({"_id": {"$lte": until.isoformat()}}).sort("_id", DESCENDING).limit(1))
        return StoredModel(model_of(docs[0]), docs[0]["fitted_at"]) if docs else None

    # -- issue 12, erasure (H4) ---------------------------------------------------------
    def erase_customer(self, customer_id: str, *, records: list[str], erasure_id: str, anon: str) -> list[str]:
        """Erase a customer: facts, profile fields, free text, loyalty state, alerts and their schedule all
        go (alerts keep no totals that need them; ``anon`` is unused). Returns the ids erased."""
        m = self.mdb
        ids = sorted({customer_id, *records, *self.records_of(customer_id)})
        for name in ("purchases", "refunds", "occurrences", "expiries", "attributes"):
            m[name].delete_many({"record_id": {"$in": ids}})
        m["loyalty"].delete_many({"_id": {"$in": ids}})
        alert_ids = [d["_id"] for d in m["alerts"].find({"customer_id": {"$in": ids}}, {"_id": 1})]
        m["alert_triggers"].delete_many({"alert_id": {"$in": alert_ids}})
        m["alerts"].delete_many({"_id": {"$in": alert_ids}})
        for name in ("view_versions", "due"):
            m[name].delete_many({"_id": {"$in": ids}})
        # Whom the mappings deleted below regroup: the customers these records still belong to here (one the
        # erasure does not name loses their days) and the records mapped to them (each left on its own): the
        # kept value report re-reads them.
        was = {*self.customers_of(ids).values(), *self.members(ids)}
        m["memberships"].delete_many({"$or": [{"_id": {"$in": ids}}, {"customer_id": {"$in": ids}}]})
        self.erase_attendance(ids)  # issue 15
        self.erase_satisfaction(ids)  # issue 15
        self.kpi_erase(ids)  # issue 15: per-record KPI rows go, store totals stay
        self.erase_value(ids, customers=was)
        self.note_erased(ids, erasure_id=erasure_id)
        return ids
