"""Issue 15, kpi: the store KPIs' aggregates, one contract for both alerts store adapters (SQLite, mongomock)."""

from __future__ import annotations

from services.alerts.store.kpi_rows import RecordMonth, StoreMonth
from shared.contract.facts import FieldValue, PurchaseFact, RefundFact
from shared.storage.membership import Membership


def _p(eid: str, record: str, day: str, amount: int, store: str = "SH-001") -> PurchaseFact:
    return PurchaseFact("pos/SH-001", eid, record, f"o-{eid}", amount, store, 0, day)


def _r(eid: str, record: str, order: str, amount: int) -> RefundFact:
    return RefundFact("pos/SH-001", eid, record, order, amount, 0)


def test_sales_and_refunds_build_store_and_record_rows_whatever_the_order(store):
    with store.transaction():
        store.add_refunds([_r("r1", "c_a", "o-p1", 3000), _r("r2", "c_a", "o-p1", 9000)])  # before the purchase
        store.add_purchases([_p("p1", "c_a", "2026-11-03", 10000), _p("p2", "c_a", "2026-11-03", 500),
                             _p("p3", "c_b", "2026-11-28", 2000), _p("p4", "c_a", "2026-10-31", 700)])
        store.add_store_sales([_p("n1", "", "2026-11-05", 4000)], [_r("nr1", "", "o-n1", 1000)])
        store.add_purchases([_p("p5", "c_a", "2026-11-30", 100, store="SH-002")])
    # Refunds of o-p1 (120.00) take at most the order's 100.00.
    assert sorted(store.kpi_totals(months=["2026-11"], stores=["SH-001"]), key=lambda t: t.store_id) == [
        StoreMonth("SH-001", "2026-11", 4, 16500, 11000, 3, 12500, 10000)]
    assert len(store.kpi_totals(months=["2026-10", "2026-11"], stores=None)) == 3
    rows = sorted(store.kpi_records(months=["2026-11"], stores=["SH-001"]), key=lambda r: r.record_id)
    assert rows == [RecordMonth("2026-11", "SH-001", "c_a", 1 << 2, 2, 500),
                    RecordMonth("2026-11", "SH-001", "c_b", 1 << 27, 1, 2000)]
    assert store.kpi_firsts(["c_a", "c_b", "c_x"]) == {"c_a": ("2026-10-31", "2026-11-03"),
                                                       "c_b": ("2026-11-28", None)}
    with store.transaction():
        store.add_purchases([_p("p6", "c_b", "2026-11-01", 100)])  # late: b's first day moves back
    assert store.kpi_firsts(["c_b"]) == {"c_b": ("2026-11-01", "2026-11-28")}
    (b,) = [r for r in store.kpi_records(months=["2026-11"], stores=["SH-001"]) if r.record_id == "c_b"]
    assert (b.days, b.orders, b.spend_minor) == (1 << 27 | 1, 2, 2100)


def test_the_newest_account_manager_over_a_customers_records_decides(store):
    with store.transaction():
        store.put_attributes([("c_a", [FieldValue("attributes.account_manager", "am-1", 1000, "pos/SH-001", "e1")]),
                              ("c_b", [FieldValue("attributes.account_manager", "am-2", 900, "pos/SH-001", "e2")]),
                              ("c_m", [FieldValue("attributes.account_manager", "", 2000, "pos/SH-001", "e3")])])
        store.apply_memberships([Membership("c_m", "c_a", "2026-11-20T00:00:01.000000Z")])
    # a's newest value (from its record m) is empty: no longer managed; b is.
    assert store.kpi_managed({"c_a": ["c_a", "c_m"], "c_b": ["c_b"], "c_c": ["c_c"]}) == {"c_b"}


def test_an_erased_customers_rows_go_and_the_store_totals_stay(store):
    with store.transaction():
        store.add_purchases([_p("p1", "c_a", "2026-11-03", 10000), _p("p2", "c_b", "2026-11-04", 2000)])
        store.add_refunds([_r("r1", "c_a", "o-p1", 1000)])
    with store.transaction():
        store.erase_customer("c_a", records=["c_a"], erasure_id="er-1", anon="anon-1")
    assert [r.record_id for r in store.kpi_records(months=["2026-11"], stores=None)] == ["c_b"]
    assert store.kpi_firsts(["c_a"]) == {}
    assert store.kpi_totals(months=["2026-11"], stores=None) == [
        StoreMonth("SH-001", "2026-11", 2, 12000, 1000, 2, 12000, 1000)]
    with store.transaction():  # a later refund of the erased customer's order still counts in the totals
        store.add_refunds([_r("r2", "anon-1", "o-p1", 500)])
    assert store.kpi_totals(months=["2026-11"], stores=None) == [
        StoreMonth("SH-001", "2026-11", 2, 12000, 1500, 2, 12000, 1500)]
    assert [r.record_id for r in store.kpi_records(months=["2026-11"], stores=None)] == ["c_b"]


def _as_before_the_kpi_aggregates(store) -> None:
    """Leave the purchases and forget what the KPI aggregates made of them, as a database of the version before."""
    if hasattr(store, "db"):
        with store.transaction():
            for table in ("kpi_records", "kpi_record_month", "kpi_store_month", "kpi_orders", "kpi_backfills"):
                store.db.conn().execute(f"DELETE FROM {table}")
        return
    for name in ("kpi_records", "kpi_record_month", "kpi_store_month", "kpi_orders", "kpi_backfills"):
        store.mdb[name].delete_many({})


def _reopened(store):
    if hasattr(store, "db"):
        from services.alerts.store.sqlite import SqliteAlertsStore

        return SqliteAlertsStore(store.db.path)
    from services.alerts.store.mongo import MongoAlertsStore

    return MongoAlertsStore(store.mdb)


def test_an_upgraded_database_gives_customers_kept_before_it_their_first_days(store):
    # c_a bought on 10 and 20 September under the version before the KPI aggregates; after the upgrade c_a and
    # the new c_b buy in November. Without the backfill c_a had no first days: 2 new customers, both of tenure 0.
    from services.alerts.reports.kpi_read import kpis

    with store.transaction():
        store.add_purchases([_p("old1", "c_a", "2026-09-10", 1000), _p("old2", "c_a", "2026-09-20", 1000)])
    _as_before_the_kpi_aggregates(store)
    store = _reopened(store)
    assert store.kpi_firsts(["c_a"]) == {"c_a": ("2026-09-10", "2026-09-20")}
    with store.transaction():
        store.add_purchases([_p("n1", "c_a", "2026-11-02", 3000), _p("n2", "c_b", "2026-11-03", 2000)])
    november = kpis(["2026-11"], store=store, stores=["SH-001"], retention_days=90)["2026-11"]
    # c_a: first purchase in September, 2 months before November; c_b new.
    assert (november.customers, november.new_customers) == (2, 1)
    assert november.tenure["new"] == 1 and november.tenure["1_2_months"] == 1
    assert store.kpi_firsts(["c_a", "c_b"]) == {"c_a": ("2026-09-10", "2026-09-20"), "c_b": ("2026-11-03", None)}
    with store.transaction():  # a later start finds the backfill done: the aggregate is not rebuilt again
        store.add_purchases([_p("n3", "c_b", "2026-11-04", 100)])
    assert _reopened(store).kpi_firsts(["c_b"]) == {"c_b": ("2026-11-03", "2026-11-04")}
