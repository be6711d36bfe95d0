"""The attendance sheet's aggregate in MongoDB (issue 15): one document per record, store, day and sitting,
kept in the same bulk calls (and transaction) that keep its facts; only facts new to the store count."""

from __future__ import annotations

from datetime import date

from pymongo import ASCENDING, UpdateOne

from services.alerts.reports.attendance import SittingFact, SittingRow, pick_tiers
from shared.contract.facts import RefundFact
from shared.storage.fact_tables import mongo_insert_new


def _sitting_id(store_id: str, day: str, sitting: str, record_id: str) -> str:
    return f"{store_id}\0{day}\0{sitting}\0{record_id}"


class MongoAttendance:
    """The attendance aggregate in the alerts MongoDB database (needs ``self.mdb`` and ``self._mock``)."""

    mdb: object
    _mock: bool

    def create_attendance_indexes(self) -> None:
        """The indexes the sheet's reads and the refund matching rely on."""
        self.mdb["attendance_purchases"].create_index([("order_id", ASCENDING), ("takes_refunds", ASCENDING)])
        self.mdb["attendance_refunds"].create_index("order_id")
        self.mdb["attendance_refunds"].create_index("record_id")
        self.mdb["attendance_purchases"].create_index("record_id")
        self.mdb["attendance_sittings"].create_index([("store_id", ASCENDING), ("day", ASCENDING)])
        self.mdb["attendance_sittings"].create_index("record_id")

    def add_sittings(self, rows: list[SittingFact], *, refunds: list[RefundFact]) -> None:
        """Keep a batch's purchases by sitting and its refunds by order, each sitting's totals with them."""
        m = self.mdb
        keys = [f"{r.source}\0{r.id}" for r in rows]
        held = {d["_id"] for d in m["attendance_purchases"].find({"_id": {"$in": keys}}, {"_id": 1})} if keys else set()
        orders = sorted({r.order_id for r in rows})
        # Only an order's first purchase takes its refunds (an order sent twice never loses them twice).
        taken = {d["order_id"] for d in m["attendance_purchases"].find(
            {"order_id": {"$in": orders}}, {"order_id": 1})} if orders else set()
        refunded: dict[str, int] = {}
        if orders:
            for d in m["attendance_refunds"].find({"order_id": {"$in": orders}}, {"order_id": 1, "amount_minor": 1}):
                refunded[d["order_id"]] = refunded.get(d["order_id"], 0) + d["amount_minor"]
        docs, ops = [], []
        for key, r in zip(keys, rows, strict=True):
            if key in held:
                continue
            held.add(key)  # the same event twice in one batch counts once
            takes = r.order_id not in taken
            taken.add(r.order_id)
            docs.append({"_id": key, "order_id": r.order_id, "record_id": r.record_id,
                         "store_id": r.store_id, "day": r.day, "sitting": r.sitting, "amount_minor": r.amount_minor,
                         "covers": r.covers, "takes_refunds": takes})
            update: dict = {"$inc": {"orders": 1, "spend_minor": r.amount_minor,
                                     # Refunds take at most their order's amount, as the store KPIs count them.
                                     "refund_minor": min(refunded.get(r.order_id, 0), r.amount_minor) if takes
                                     else 0},
                            "$setOnInsert": {"store_id": r.store_id, "day": r.day, "sitting": r.sitting,
                                             "record_id": r.record_id}}
            if r.covers is not None:
                update["$max"] = {"covers": r.covers}
            ops.append(UpdateOne({"_id": _sitting_id(r.store_id, r.day, r.sitting, r.record_id)}, update,
                                 upsert=True))
        if docs:
            m["attendance_purchases"].insert_many(docs, ordered=True)
        self._write_sittings(ops)
        fresh = mongo_insert_new(m["attendance_refunds"], [
            {"_id": f"{r.source}\0{r.id}", "order_id": r.order_id, "record_id": r.record_id,
             "amount_minor": r.amount_minor} for r in refunds])
        new = [r for r in {f"{r.source}\0{r.id}": r for r in refunds}.values() if f"{r.source}\0{r.id}" in fresh]
        if not new:
            return
        named = sorted({r.order_id for r in new})
        takers = {d["order_id"]: d for d in m["attendance_purchases"].find(
            {"order_id": {"$in": named}, "takes_refunds": True})}
        # What an order's refunds take now (their sum, the new ones included, capped at the order's amount) less
        # what they took before the new ones: a refund re-sent under a new id never takes another order's spend.
        total: dict[str, int] = dict.fromkeys(named, 0)
        for d in m["attendance_refunds"].find({"order_id": {"$in": sorted(takers)}},
                                              {"order_id": 1, "amount_minor": 1}):
            total[d["order_id"]] += d["amount_minor"]
        added: dict[str, int] = dict.fromkeys(named, 0)
        for r in new:
            added[r.order_id] += r.amount_minor
        ops = []
        for order, p in takers.items():
            amount = p["amount_minor"]
            if taken_now := min(total[order], amount) - min(total[order] - added[order], amount):
                ops.append(UpdateOne({"_id": _sitting_id(p["store_id"], p["day"], p["sitting"], p["record_id"])},
                                     {"$inc": {"refund_minor": taken_now}}))
        self._write_sittings(ops)

    def _write_sittings(self, ops: list[UpdateOne]) -> None:
        # The adapter's one bulk write (mongomock's fallback included), looked up when called: mongo.py
        # imports this module, and a bulk write counts as one round trip wherever it is measured.
        from services.alerts.store import mongo

        mongo._bulk(self.mdb["attendance_sittings"], ops, mock=self._mock)

    def sittings_at(self, store_id: str, *, first: date, until: date) -> list[SittingRow]:
        """The sittings at a store from ``first`` up to (not including) ``until``, per record."""
        return [SittingRow(d["record_id"], d["day"], d["sitting"], d["orders"], d["spend_minor"], d["refund_minor"],
                           d.get("covers"))
                for d in self.mdb["attendance_sittings"].find(
                    {"store_id": store_id, "day": {"$gte": first.isoformat(), "$lt": until.isoformat()}})]

    def tiers_of(self, customer_ids: list[str]) -> dict[str, str | None]:
        """Each customer's tier now: its own loyalty part, else the newest of its records' (as its facts read it)."""
        owner = self.members(customer_ids)  # type: ignore[attr-defined]
        rows = [(d["_id"], d["tier"], d["version"])
                for d in self.mdb["loyalty"].find({"_id": {"$in": list(owner)}}, {"tier": 1, "version": 1})]
        return pick_tiers(customer_ids, owner=owner, rows=rows)

    def erase_attendance(self, ids: list[str]) -> None:
        """Forget these records' purchases, refunds and sittings (an erasure)."""
        for name in ("attendance_purchases", "attendance_refunds", "attendance_sittings"):
            self.mdb[name].delete_many({"record_id": {"$in": ids}})
