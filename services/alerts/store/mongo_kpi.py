"""Store KPIs' aggregates in MongoDB (issue 15): kept by the same calls that keep purchases and refunds."""

from __future__ import annotations

from pymongo import ReplaceOne, UpdateOne

from services.alerts.reports.kpi import Figures
from services.alerts.reports.kpi_aggregate import TOTALS, Changes, Order, fold_sales, refunds_of, sales_of
from services.alerts.store.kpi_rows import RecordMonth, StoreMonth
from shared.contract.facts import PurchaseFact, RefundFact
from shared.storage.fact_tables import open_doc_field

MANAGER = "attributes.account_manager"
FIRST_DAYS = "first_days"  # the backfill of first purchase days (``kpi_backfill``)


def _apply(coll, ops: list, *, mock: bool) -> None:
    """One bulk write, through the adapter's own (read when called: ``mongo`` imports this module)."""
    from services.alerts.store import mongo

    mongo._bulk(coll, ops, mock=mock)


def _bits(days: list[int]) -> int:
    out = 0
    for d in days:
        out |= 1 << (d - 1)
    return out


class MongoKpi:
    """The KPI aggregates of a MongoDB alerts store (mixed into ``MongoAlertsStore``)."""

    mdb: object
    _mock: bool

    def create_kpi_indexes(self) -> None:
        """The indexes the KPI reads rely on."""
        self.mdb["kpi_store_month"].create_index([("month", 1), ("store_id", 1)])  # type: ignore[index]
        self.mdb["kpi_record_month"].create_index([("month", 1), ("store_id", 1)])  # type: ignore[index]

    def kpi_backfill(self) -> None:
        """Give records kept before the KPI aggregates their first purchase days, once per database: without
        them every returning customer counted as new (and of tenure 0) in the first month after an upgrade."""
        m = self.mdb
        if m["kpi_backfills"].find_one({"_id": FIRST_DAYS}) is not None:  # type: ignore[index]
            return  # every later start: one read
        with self.transaction():  # type: ignore[attr-defined]
            # The purchases collection holds every member purchase the aggregates count: this is exact.
            days: dict[str, set[str]] = {}
            for d in m["purchases"].find({}, {"record_id": 1, "day": 1}):  # type: ignore[index]
                days.setdefault(d["record_id"], set()).add(d["day"])
            two = {r: sorted(ds)[:2] for r, ds in days.items()}
            _apply(m["kpi_records"], [ReplaceOne({"_id": r}, {"first_day": t[0],  # type: ignore[index]
                                                              "second_day": t[1] if len(t) > 1 else None},
                                                 upsert=True) for r, t in two.items()], mock=self._mock)
            m["kpi_backfills"].insert_one({"_id": FIRST_DAYS})  # type: ignore[index]

    def add_store_sales(self, purchases: list[PurchaseFact], refunds: list[RefundFact]) -> None:
        """Non-members' purchases and refunds: kept in store totals only."""
        self.kpi_add(purchases, refunds, member=False)

    def kpi_add(self, purchases: list[PurchaseFact], refunds: list[RefundFact], *, member: bool = True) -> None:
        """Fold new purchases and refunds into the aggregates: two reads, four bulk writes."""
        if not purchases and not refunds:
            return
        sales, back = sales_of(purchases, member=member), refunds_of(refunds)
        m = self.mdb
        order_ids = sorted({s.order_id for s in sales} | {o for o, _ in back})
        held = {d["_id"]: Order(d["_id"], d["store_id"], d["month"], d["record_id"], d["amount_minor"],
                                d["refunded_minor"])
                for d in m["kpi_orders"].find({"_id": {"$in": order_ids}})}  # type: ignore[index]
        records = sorted({s.record_id for s in sales if s.record_id is not None})  # type: ignore[misc]
        firsts = {d["_id"]: (d["first_day"], d["second_day"])
                  for d in m["kpi_records"].find({"_id": {"$in": records}})} if records else {}  # type: ignore[index]
        self._kpi_write(fold_sales(sales, back, held=held, firsts=firsts))

    def _kpi_write(self, ch: Changes) -> None:
        m, mock = self.mdb, self._mock
        _apply(m["kpi_orders"], [ReplaceOne({"_id": o.order_id}, {  # type: ignore[index]
            "store_id": o.store_id, "month": o.month, "record_id": o.record_id, "amount_minor": o.amount_minor,
            "refunded_minor": o.refunded_minor}, upsert=True) for o in ch.orders], mock=mock)
        _apply(m["kpi_store_month"], [UpdateOne(  # type: ignore[index]
            {"_id": f"{s}\0{mo}"}, {"$set": {"store_id": s, "month": mo}, "$inc": dict(zip(TOTALS, v, strict=True))},
            upsert=True) for (s, mo), v in ch.totals.items()], mock=mock)
        ops = []
        for (s, mo, r), (bits, orders, spend) in ch.records.items():
            days = [d + 1 for d in range(31) if bits >> d & 1]
            ops.append(UpdateOne({"_id": f"{mo}\0{s}\0{r}"}, {
                "$set": {"store_id": s, "month": mo, "record_id": r}, "$addToSet": {"days": {"$each": days}},
                "$inc": {"orders": orders, "spend_minor": spend}}, upsert=True))
        _apply(m["kpi_record_month"], ops, mock=mock)  # type: ignore[index]
        _apply(m["kpi_records"], [ReplaceOne({"_id": r}, {"first_day": a, "second_day": b}, upsert=True)  # type: ignore[index]
                                  for r, (a, b) in ch.firsts.items()], mock=mock)

    def kpi_totals(self, *, months: list[str], stores: list[str] | None) -> list[StoreMonth]:
        """Store totals of these months, of these stores (None: every store)."""
        q: dict = {"month": {"$in": months}}
        if stores is not None:
            q["store_id"] = {"$in": stores}
        return [StoreMonth(d["store_id"], d["month"], *(d.get(c, 0) for c in TOTALS))
                for d in self.mdb["kpi_store_month"].find(q)]  # type: ignore[index]

    def kpi_records(self, *, months: list[str], stores: list[str] | None) -> list[RecordMonth]:
        """Per store, month and record: purchase days (bits), orders, net spend, of these months and stores."""
        q: dict = {"month": {"$in": months}}
        if stores is not None:
            q["store_id"] = {"$in": stores}
        return [RecordMonth(d["month"], d["store_id"], d["record_id"], _bits(d.get("days", [])), d.get("orders", 0),
                            d.get("spend_minor", 0)) for d in self.mdb["kpi_record_month"].find(q)]  # type: ignore[index]

    def kpi_firsts(self, records: list[str]) -> dict[str, tuple[str, str | None]]:
        """Each record's first two distinct purchase days (the second None when it has one)."""
        if not records:
            return {}
        return {d["_id"]: (d["first_day"], d["second_day"])
                for d in self.mdb["kpi_records"].find({"_id": {"$in": records}})}  # type: ignore[index]

    def kpi_managed(self, records_of: dict[str, list[str]]) -> set[str]:
        """Which of these customers (customer -> their records) an account manager manages now: the newest
        ``attributes.account_manager`` over their records is set."""
        owner = {r: c for c, records in records_of.items() for r in records}
        if not owner:
            return set()
        docs = list(self.mdb["attributes"].find(  # type: ignore[index]
            {"record_id": {"$in": sorted(owner)}, "field": MANAGER}))
        if docs:
            self.keys.load({d["record_id"] for d in docs})  # type: ignore[attr-defined]
        newest: dict[str, tuple] = {}
        for d in docs:
            order = (d["time_ms"], d["source"], d["event_id"])
            held = newest.get(owner[d["record_id"]])
            if held is None or order > held[0]:
                value = open_doc_field(self.keys, d["record_id"], MANAGER, d["value"])  # type: ignore[attr-defined]
                newest[owner[d["record_id"]]] = (order, value)
        return {c for c, (_, value) in newest.items() if value}

    def kpi_customers(self, before: dict[str, str], *, stores: list[str] | None,
                      retention_days: int) -> dict[str, Figures]:
        """The customer figures of each month (``before``: month -> the month before) over ``stores``, every
        record mapped to its customer now (the store totals' figures left at 0)."""
        from services.alerts.reports.kpi_read import customer_figures  # it reads through this store

        rows = self.kpi_records(months=sorted(set(before) | set(before.values())), stores=stores)
        return customer_figures(self, before, rows, retention_days=retention_days)  # type: ignore[arg-type]

    def kpi_erase(self, ids: list[str]) -> None:
        """Forget erased records in the aggregates: their rows go, their orders stay in the store totals."""
        m = self.mdb
        m["kpi_record_month"].delete_many({"record_id": {"$in": ids}})  # type: ignore[index]
        m["kpi_records"].delete_many({"_id": {"$in": ids}})  # type: ignore[index]
        m["kpi_orders"].update_many({"record_id": {"$in": ids}}, {"$set": {"record_id": ""}})  # type: ignore[index]
