"""Issue 15, satisfaction: survey scores per store and month, purchase days per store, month and record (the
loyal-customer count), and the reasons alerts were resolved for, in alerts' MongoDB database."""

from __future__ import annotations

from collections import Counter, defaultdict

from pymongo import ASCENDING, UpdateOne

from services.alerts.reports.satisfaction import (
    LOYAL_MIN_DAYS,
    SCORES,
    ReasonRow,
    SurveyScore,
    VisitDay,
    day_counts,
    month_of,
)
from shared.storage.crypto import SERVICE

_REASON_FIELDS = ("alert_id", "type", "store_id", "month", "reason", "reason_text", "record_id", "resolved_at")


# Records of merged customers: the records merged into another and the customers they were merged into.
_MERGED = [{"$project": {"customer_id": 1, "moved": {"$ne": ["$customer_id", "$_id"]}}}, {"$match": {"moved": True}}]


def _stores(stores: frozenset[str] | None) -> dict:
    return {} if stores is None else {"store_id": {"$in": sorted(stores)}}


class MongoSatisfaction:
    """The satisfaction aggregates (needs ``self.mdb``, ``self.keys``, ``self._mock``)."""

    mdb: object
    keys: object
    _mock: bool

    def create_satisfaction_indexes(self) -> None:
        """The indexes the satisfaction reads rely on (call once when the store opens)."""
        m = self.mdb
        m["sat_surveys"].create_index([("month", ASCENDING), ("store_id", ASCENDING)])  # type: ignore[index]
        m["sat_visits"].create_index([("month", ASCENDING), ("store_id", ASCENDING)])  # type: ignore[index]
        m["sat_visits"].create_index("record_id")  # type: ignore[index]
        m["sat_reasons"].create_index([("month", ASCENDING), ("store_id", ASCENDING)])  # type: ignore[index]
        m["sat_reasons"].create_index("record_id")  # type: ignore[index]

    def _write(self, name: str, ops: list) -> None:
        from services.alerts.store import mongo  # the adapter's one bulk write (it imports this module)

        mongo._bulk(self.mdb[name], ops, mock=self._mock)  # type: ignore[index]

    def add_survey_scores(self, rows: list[SurveyScore]) -> None:
        """Count new survey responses into their store-month (one bulk write for the batch)."""
        counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
        for r in rows:
            counts[(r.month, r.store_id)][str(r.score)] += 1
        self._write("sat_surveys", [
            UpdateOne({"_id": f"{month}\0{store}"},
                      {"$setOnInsert": {"month": month, "store_id": store},
                       "$inc": {f"n.{score}": n for score, n in c.items()}}, upsert=True)
            for (month, store), c in counts.items()])

    def add_visit_days(self, rows: list[VisitDay]) -> None:
        """Note purchase days per store, month and record (a day of the month counts once)."""
        days: dict[tuple[str, str, str], set[int]] = defaultdict(set)
        for r in rows:
            days[(month_of(r.day), r.store_id, r.record_id)].add(r.day.day)
        self._write("sat_visits", [
            UpdateOne({"_id": f"{month}\0{store}\0{record}"},
                      {"$setOnInsert": {"month": month, "store_id": store, "record_id": record},
                       "$addToSet": {"days": {"$each": sorted(d)}}}, upsert=True)
            for (month, store, record), d in days.items()])

    def survey_counts(self, *, months: list[str], stores: frozenset[str] | None) -> dict[str, list[int]]:
        """Responses per score 0..10 of each month, over ``stores`` (None: every store and none)."""
        out = {m: [0] * SCORES for m in months}
        for d in self.mdb["sat_surveys"].find({"month": {"$in": months}, **_stores(stores)}):  # type: ignore[index]
            for score, n in d.get("n", {}).items():
                out[d["month"]][int(score)] += n
        return out

    def repeat_buyers(self, *, months: list[str], stores: frozenset[str] | None) -> tuple[int, int]:
        """Customers with a purchase in ``months`` at ``stores`` (None: all), and those of them with purchases on
        at least two distinct days; records mapped to their customer now."""
        m = self.mdb
        q = {"month": {"$in": months}, **_stores(stores)}
        # A record no other belongs to, and belonging to no other, is its own customer: its distinct days counted
        # in the database. The few records of merged customers are read and grouped by their customer here.
        merged = sorted({x for d in m["memberships"].aggregate(_MERGED) for x in (d["_id"], d["customer_id"])})  # type: ignore[index]
        alone = list(m["sat_visits"].aggregate([  # type: ignore[index]
            {"$match": {**q, "record_id": {"$nin": merged}}}, {"$unwind": "$days"},
            {"$group": {"_id": {"r": "$record_id", "m": "$month", "d": "$days"}}},
            {"$group": {"_id": "$_id.r", "n": {"$sum": 1}}},
            {"$group": {"_id": None, "customers": {"$sum": 1},
                        "loyal": {"$sum": {"$cond": [{"$gte": ["$n", LOYAL_MIN_DAYS]}, 1, 0]}}}}]))
        customers, loyal = (alone[0]["customers"], alone[0]["loyal"]) if alone else (0, 0)
        docs = list(m["sat_visits"].find({**q, "record_id": {"$in": merged}})) if merged else []  # type: ignore[index]
        owner = self.customers_of(sorted({d["record_id"] for d in docs}))  # type: ignore[attr-defined]
        masks: dict[tuple[str, str], int] = defaultdict(int)
        for d in docs:
            masks[(owner[d["record_id"]], d["month"])] |= sum(1 << (day - 1) for day in d["days"])
        days = day_counts(masks)
        return customers + len(days), loyal + sum(1 for n in days.values() if n >= LOYAL_MIN_DAYS)

    def put_reason(self, row: ReasonRow) -> None:
        """Keep why an alert was resolved (its text sealed); a later resolution of the same alert replaces it."""
        doc = {k: getattr(row, k) for k in _REASON_FIELDS}
        doc["reason_text"] = self.keys.seal(SERVICE, "alerts.reason_text", row.reason_text)  # type: ignore[attr-defined]
        self.mdb["sat_reasons"].replace_one({"_id": row.alert_id}, doc, upsert=True)  # type: ignore[index]

    def reason_counts(self, *, month: str, stores: frozenset[str] | None) -> dict[tuple[str | None, str | None], int]:
        """Resolutions of a month per (store, reason) over ``stores`` (None: all, no store included)."""
        out: Counter = Counter()
        for d in self.mdb["sat_reasons"].find({"month": month, **_stores(stores)}):  # type: ignore[index]
            out[(d.get("store_id"), d.get("reason"))] += 1
        return dict(out)

    def reasons_of(self, records: list[str]) -> list[ReasonRow]:
        """The resolution reasons of alerts raised for these records, oldest first (a customer's export)."""
        docs = self.mdb["sat_reasons"].find({"record_id": {"$in": records}})  # type: ignore[index]
        out = []
        for d in sorted(docs, key=lambda d: (d["resolved_at"], d["alert_id"])):
            values = {k: d.get(k) for k in _REASON_FIELDS}
            values["reason_text"] = self.keys.open(SERVICE, "alerts.reason_text", values["reason_text"])  # type: ignore[attr-defined]
            out.append(ReasonRow(**values))
        return out

    def erase_satisfaction(self, ids: list[str]) -> None:
        """An erased customer's purchase days go, and the text and record of their reasons (the counts stay)."""
        self.mdb["sat_visits"].delete_many({"record_id": {"$in": ids}})  # type: ignore[index]
        self.mdb["sat_reasons"].update_many({"record_id": {"$in": ids}},  # type: ignore[index]
                                            {"$set": {"reason_text": None, "record_id": None}})
