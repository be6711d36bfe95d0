"""Customer value's aggregate in MongoDB (issue 15, part 4): the same rows as ``sqlite_value``, as documents.

``value_days``: ``_id`` record and day, spend, refunds of those purchases, purchases; ``value_orders``: ``_id``
the order, the (record, day) of its purchase, the sum of its purchases (absent: kept before refunds were capped)
and refunds so far; ``value_generation``: one document counting the changes, bumped by every write the report
reads. Written with one bulk write per collection per batch inside the facts' transaction; read grouped per
record by the database (``$group``) and into customers through the membership collection.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import date

from pymongo import UpdateOne

from services.alerts.reports.value import Held, ValueTotals, day_deltas, refund_deltas, totals_of
from services.alerts.store.sqlite_value import VALUE_LOG
from shared.contract.facts import PurchaseFact, RefundFact
from shared.storage.changes import MongoChanges


def _write(coll, ops: list, *, mock: bool) -> None:
    """One bulk write, through the adapter's own (mongomock takes the operations one by one there)."""
    from services.alerts.store import mongo  # imported here: the adapter imports this mixin

    mongo._bulk(coll, ops, mock=mock)


class MongoValue(MongoChanges):
    """Keeps and reads the customer-value aggregate (needs ``self.mdb`` and ``self._mock``)."""

    mdb: object
    _mock: bool

    def bump_value(self, ids: Iterable[str] | None) -> None:
        """Note, in the writer's transaction, that what the customer-value report reads has changed, and for
        which record or customer ids (None: unknown, a kept report is then computed afresh)."""
        self.bump_log(VALUE_LOG, ids)

    def value_generation(self) -> int:
        """How many times what the report reads has changed (0: never): equal numbers, equal reports."""
        return self.log_generation(VALUE_LOG)

    def value_changes(self, *, after: int, upto: int) -> set[str] | None:
        """The record and customer ids changed by generations after..upto, or None when that is not known."""
        return self.log_changes(VALUE_LOG, after=after, upto=upto)

    def value_totals_of(self, customer_ids: list[str], *, since: date, until: date) -> list[ValueTotals]:
        """These ids' totals as ``value_totals`` gives them (ids with no purchase day left out)."""
        # As ``value_totals`` groups them: an id's own record unless it belongs to another customer, and every
        # record that belongs to it.
        mapped = self.customers_of(customer_ids)  # type: ignore[attr-defined]
        owner = {x: x for x in customer_ids if mapped[x] == x}
        owner.update({d["_id"]: d["customer_id"] for d in self.mdb["memberships"].find(  # type: ignore[index]
            {"customer_id": {"$in": customer_ids}}, {"customer_id": 1})})
        days: dict[str, dict[str, list[int]]] = defaultdict(dict)
        for d in self.mdb["value_days"].find(  # type: ignore[index]
                {"record_id": {"$in": list(owner)}, "day": {"$lte": until.isoformat()}}):
            acc = days[owner[d["record_id"]]].setdefault(d["day"], [0, 0])
            acc[0] += d["spend_minor"] - d["refund_minor"]
            acc[1] += d["orders"]
        return [totals_of(cust, by_day, since=since.isoformat()) for cust, by_day in days.items()]

    def _orders(self, order_ids: list[str]) -> dict[str, Held]:
        return {d["_id"]: Held(d.get("record_id"), d.get("day"), d.get("amount_minor"), d["refund_minor"])
                for d in self.mdb["value_orders"].find({"_id": {"$in": order_ids}})}  # type: ignore[index]

    def keep_value_purchases(self, rows: list[PurchaseFact]) -> None:
        """Add new purchases to the aggregate; a refund of the order that came first lands with them."""
        if not rows:
            return
        spend, orders, refund, placed = day_deltas(rows, self._orders(sorted({r.order_id for r in rows})))
        _write(self.mdb["value_orders"], [  # type: ignore[index]
            UpdateOne({"_id": o}, {"$set": {"record_id": h.record_id, "day": h.day, "amount_minor": h.amount_minor},
                                   "$setOnInsert": {"refund_minor": 0}}, upsert=True)
            for o, h in placed.items()], mock=self._mock)
        _write(self.mdb["value_days"], [  # type: ignore[index]
            UpdateOne({"_id": f"{rec}\0{day}"}, {"$set": {"record_id": rec, "day": day},
                                                  "$inc": {"spend_minor": spend[(rec, day)],
                                                           "refund_minor": refund[(rec, day)],
                                                           "orders": orders[(rec, day)]}}, upsert=True)
            for rec, day in spend], mock=self._mock)
        self.bump_value({r.record_id for r in rows})

    def keep_value_refunds(self, rows: list[RefundFact]) -> None:
        """Add new refunds to the aggregate, on their order's purchase day (kept aside until it comes), never
        taking off more than the order's amount."""
        if not rows:
            return
        amount: Counter = Counter()
        for r in rows:
            amount[r.order_id] += r.amount_minor
        taken = refund_deltas(amount, self._orders(sorted(amount)))
        _write(self.mdb["value_orders"], [  # type: ignore[index]
            UpdateOne({"_id": o}, {"$inc": {"refund_minor": a},
                                   "$setOnInsert": {"record_id": None, "day": None, "amount_minor": 0}},
                      upsert=True) for o, a in amount.items()], mock=self._mock)
        _write(self.mdb["value_days"], [  # type: ignore[index]
            UpdateOne({"_id": f"{rec}\0{day}"}, {"$inc": {"refund_minor": t}}) for (rec, day), t in taken.items()],
            mock=self._mock)
        if taken:  # refunds of orders not purchased yet, or already refunded in full, change no figure
            self.bump_value({rec for rec, _ in taken})

    def value_totals(self, *, since: date, until: date) -> list[ValueTotals]:
        """Every customer's totals: over purchase days ``since``..``until`` and over all days up to ``until``."""
        lo, hi = since.isoformat(), until.isoformat()
        days = self.mdb["value_days"]  # type: ignore[index]
        # As in SQLite: records merged into another customer are few; the rest are customers of their own,
        # summed per record by the database. A merged customer's days are gathered below, where one day bought
        # on by two of its records counts once.
        owner = {d["_id"]: d["customer_id"] for d in self.mdb["memberships"].aggregate([  # type: ignore[index]
            {"$project": {"customer_id": 1, "moved": {"$ne": ["$customer_id", "$_id"]}}}, {"$match": {"moved": True}}])}
        joined = set(owner.values())
        inside = {"$gte": ["$day", lo]}
        out, merged = [], defaultdict(list)
        for d in days.aggregate([
                {"$match": {"day": {"$lte": hi}}},
                {"$group": {"_id": "$record_id",
                            "net": {"$sum": {"$cond": [inside, {"$subtract": ["$spend_minor", "$refund_minor"]}, 0]}},
                            "orders": {"$sum": {"$cond": [inside, "$orders", 0]}},
                            "period_days": {"$sum": {"$cond": [inside, 1, 0]}}, "days": {"$sum": 1},
                            "first": {"$min": "$day"}, "last": {"$max": "$day"}}}], allowDiskUse=True):
            rec = d["_id"]
            if rec in owner or rec in joined:
                merged[owner.get(rec, rec)].append(rec)
            else:
                out.append(ValueTotals(rec, d["net"], d["orders"], d["period_days"], d["days"],
                                       date.fromisoformat(d["first"]), date.fromisoformat(d["last"])))
        for cust, records in merged.items():
            by_day: dict[str, list[int]] = {}
            for d in days.find({"record_id": {"$in": records}, "day": {"$lte": hi}}):
                acc = by_day.setdefault(d["day"], [0, 0])
                acc[0] += d["spend_minor"] - d["refund_minor"]
                acc[1] += d["orders"]
            out.append(totals_of(cust, by_day, since=lo))
        return out

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
        if ops:
            self.bump_value(None)
        return len(ops)

    def erase_value(self, ids: list[str], *, customers: Iterable[str] = ()) -> None:
        """Forget erased records' aggregate rows (``customers``: those they belonged to, whose totals change)."""
        self.mdb["value_days"].delete_many({"record_id": {"$in": ids}})  # type: ignore[index]
        self.mdb["value_orders"].delete_many({"record_id": {"$in": ids}})  # type: ignore[index]
        self.bump_value({*ids, *customers})

    def create_value_indexes(self) -> None:
        """The indexes the aggregate's reads and erasure use."""
        self.mdb["value_days"].create_index("record_id")  # type: ignore[index]
        self.mdb["value_days"].create_index("day")  # type: ignore[index]
        self.mdb["value_orders"].create_index("record_id")  # type: ignore[index]
