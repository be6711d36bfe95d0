"""Customer value's aggregate in MongoDB (issue 15, part 4): the same rows as ``sqlite_value``, as documents.

``value_days``: ``_id`` record and day, spend, refunds of those purchases, purchases; ``value_orders``: ``_id``
the order, the (record, day) of its purchase, refunds so far. Written with one bulk write per collection per
batch inside the facts' transaction; read grouped into customers through the membership collection.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date

from pymongo import UpdateOne

from services.alerts.reports.value import ValueTotals, day_deltas, totals_of
from shared.contract.facts import PurchaseFact, RefundFact


def _write(coll, ops: list, *, mock: bool) -> None:
    """One bulk write, through the adapter's own (mongomock takes the operations one by one there)."""
    from services.alerts.store import mongo  # imported here: the adapter imports this mixin

    mongo._bulk(coll, ops, mock=mock)


class MongoValue:
    """Keeps and reads the customer-value aggregate (needs ``self.mdb`` and ``self._mock``)."""

    mdb: object
    _mock: bool

    def _orders(self, order_ids: list[str]) -> dict[str, dict]:
        return {d["_id"]: d for d in self.mdb["value_orders"].find({"_id": {"$in": order_ids}})}  # type: ignore

    def keep_value_purchases(self, rows: list[PurchaseFact]) -> None:
        """Add new purchases to the aggregate; a refund of the order that came first lands with them."""
        if not rows:
            return
        docs = self._orders(sorted({r.order_id for r in rows}))
        held = {o: (d.get("day"), d["refund_minor"]) for o, d in docs.items()}
        spend, orders, refund, placed = day_deltas(rows, held)
        _write(self.mdb["value_orders"], [  # type: ignore[index]
            UpdateOne({"_id": o}, {"$set": {"record_id": rec, "day": day}, "$setOnInsert": {"refund_minor": 0}},
                      upsert=True) for o, (rec, day) in placed.items()], mock=self._mock)
        _write(self.mdb["value_days"], [  # type: ignore[index]
            UpdateOne({"_id": f"{rec}\0{day}"}, {"$set": {"record_id": rec, "day": day},
                                                  "$inc": {"spend_minor": spend[(rec, day)],
                                                           "refund_minor": refund[(rec, day)],
                                                           "orders": orders[(rec, day)]}}, upsert=True)
            for rec, day in spend], mock=self._mock)

    def keep_value_refunds(self, rows: list[RefundFact]) -> None:
        """Add new refunds to the aggregate, on their order's purchase day (kept aside until it comes)."""
        if not rows:
            return
        amount: Counter = Counter()
        for r in rows:
            amount[r.order_id] += r.amount_minor
        held = self._orders(sorted(amount))
        _write(self.mdb["value_orders"], [  # type: ignore[index]
            UpdateOne({"_id": o}, {"$inc": {"refund_minor": a}, "$setOnInsert": {"record_id": None, "day": None}},
                      upsert=True) for o, a in amount.items()], mock=self._mock)
        _write(self.mdb["value_days"], [  # type: ignore[index]
            UpdateOne({"_id": f"{d['record_id']}\0{d['day']}"}, {"$inc": {"refund_minor": amount[o]}})
            for o, d in held.items() if d.get("day") is not None], mock=self._mock)

    def value_totals(self, *, since: date, until: date) -> list[ValueTotals]:
        """Every customer's totals: over purchase days ``since``..``until`` and over all days up to ``until``."""
        lo, hi = since.isoformat(), until.isoformat()
        owner = {d["_id"]: d["customer_id"] for d in self.mdb["memberships"].find(  # type: ignore[index]
            {}, {"customer_id": 1})}
        days: dict[str, dict[str, list[int]]] = defaultdict(dict)  # customer -> day -> [net, orders]
        for d in self.mdb["value_days"].find({"day": {"$lte": hi}}):  # type: ignore[index]
            acc = days[owner.get(d["record_id"], d["record_id"])].setdefault(d["day"], [0, 0])
            acc[0] += d["spend_minor"] - d["refund_minor"]
            acc[1] += d["orders"]
        return [totals_of(cust, by_day, since=lo) for cust, by_day in days.items()]

    def backfill_value(self) -> int:
        """Once per store: ``value_days`` documents for the purchases kept before the aggregate existed (a store
        upgraded with history), so the customer-value report and the CLV model see them; how many."""
        from services.alerts.store.sqlite_value import VALUE_BACKFILL_MARK

        if self.get_mark(VALUE_BACKFILL_MARK) is not None:  # type: ignore[attr-defined]
            return 0
        days: dict[tuple[str, str], list[int]] = {}
        for d in self.mdb["purchases"].find({}, {"record_id": 1, "day": 1, "amount_minor": 1}):  # type: ignore[index]
            acc = days.setdefault((d["record_id"], d["day"]), [0, 0])
            acc[0] += d["amount_minor"]
            acc[1] += 1
        # Only days the aggregate does not hold yet; those purchases' refunds named no order: not subtracted.
        held = {d["_id"] for d in self.mdb["value_days"].find({}, {"_id": 1})}  # type: ignore[index]
        ops = [UpdateOne({"_id": f"{rec}\0{day}"}, {"$setOnInsert": {"record_id": rec, "day": day, "spend_minor": s,
                                                                     "refund_minor": 0, "orders": n}}, upsert=True)
               for (rec, day), (s, n) in days.items() if f"{rec}\0{day}" not in held]
        _write(self.mdb["value_days"], ops, mock=self._mock)  # type: ignore[index]
        self.put_mark(VALUE_BACKFILL_MARK, "1")  # type: ignore[attr-defined]
        return len(ops)

    def erase_value(self, ids: list[str]) -> None:
        """Forget erased records' aggregate rows."""
        self.mdb["value_days"].delete_many({"record_id": {"$in": ids}})  # type: ignore[index]
        self.mdb["value_orders"].delete_many({"record_id": {"$in": ids}})  # type: ignore[index]

    def create_value_indexes(self) -> None:
        """The indexes the aggregate's reads and erasure use."""
        self.mdb["value_days"].create_index("record_id")  # type: ignore[index]
        self.mdb["value_days"].create_index("day")  # type: ignore[index]
        self.mdb["value_orders"].create_index("record_id")  # type: ignore[index]
