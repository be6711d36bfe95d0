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


def _manager(record: str, value: str, ms: int) -> tuple[str, list[FieldValue]]:
    return record, [FieldValue("attributes.account_manager", value, ms, "crm/test", f"am-{record}-{ms}")]


def test_customer_figures_count_records_alone_and_merged_customers_exactly(store):
    # November 2026 at SH-001 and SH-002; October is the month before.
    # a: alone, new in November (3 and 20 Nov: returning within 90 days), at both stores on 3 Nov (one day);
    # b: alone, first bought 2026-08-15, again in October and on 1 Nov: retained, tenure 3_5_months, managed;
    # c: record of customer d (merged): c bought 5 Nov, d on 5 and 6 Nov: one customer, 2 days, repeat;
    #    d's first day 2025-10-01 (tenure 12_23), its manager set on record c (newest) while d's is empty;
    # e: alone, bought only in October: a previous customer not retained.
    with store.transaction():
        store.add_purchases([
            _p("a1", "c_a", "2026-11-03", 100), _p("a2", "c_a", "2026-11-03", 100, store="SH-002"),
            _p("a3", "c_a", "2026-11-20", 100, store="SH-002"),
            _p("b0", "c_b", "2026-08-15", 100), _p("b1", "c_b", "2026-10-10", 100), _p("b2", "c_b", "2026-11-01", 100),
            _p("d0", "c_d", "2025-10-01", 100), _p("c1", "c_c", "2026-11-05", 100), _p("d1", "c_d", "2026-11-05", 100),
            _p("d2", "c_d", "2026-11-06", 100, store="SH-002"), _p("e1", "c_e", "2026-10-02", 100)])
        store.apply_memberships([Membership("c_c", "c_d", "2026-11-07T00:00:00.000000Z")])
        store.put_attributes([_manager("c_b", "am-1", 1000), _manager("c_d", "", 3000), _manager("c_c", "am-2", 4000),
                              _manager("c_e", "am-3", 1000)])
    both = store.kpi_customers({"2026-11": "2026-10"}, stores=None, retention_days=90)["2026-11"]
    assert (both.customers, both.new_customers, both.returning_new, both.previous_customers,
            both.retained_customers, both.repeat_customers, both.purchase_days, both.managed_customers) == (
        3, 1, 1, 2, 1, 2, 2 + 1 + 2, 2)
    assert both.tenure == {"new": 1, "1_2_months": 0, "3_5_months": 1, "6_11_months": 0, "12_23_months": 1,
                           "24_months_plus": 0}
    assert (both.orders, both.gross_sales) == (0, 0)  # the store totals are kpi_totals'
    one = store.kpi_customers({"2026-11": "2026-10"}, stores=["SH-002"], retention_days=90)["2026-11"]
    # At SH-002 only: a on 3 and 20 Nov (2 days), d on 6 Nov; nobody bought at SH-002 in October.
    assert (one.customers, one.previous_customers, one.repeat_customers, one.purchase_days,
            one.managed_customers) == (2, 0, 1, 3, 1)
    with store.transaction():  # d's manager set again, newest: still one managed customer (d), counted once
        store.put_attributes([_manager("c_d", "am-4", 5000)])
        store.apply_memberships([Membership("c_c", "c_c", "2026-11-08T00:00:00.000000Z")])  # and c unmerged
    after = store.kpi_customers({"2026-11": "2026-10"}, stores=None, retention_days=90)["2026-11"]
    # c alone now: new in November (5 Nov only, no second day), managed (am-2); d: 5 and 6 Nov, managed.
    assert (after.customers, after.new_customers, after.returning_new, after.repeat_customers,
            after.purchase_days, after.managed_customers) == (4, 2, 1, 2, 2 + 1 + 1 + 2, 3)


def test_customer_figures_are_the_general_paths_on_a_random_history(store):
    # The store's own counting (SQLite: in SQL for records alone) against the general path in Python over the
    # same rows, on a history with merges, several stores, managers set and emptied, and late purchases.
    import random

    from services.alerts.reports.kpi_read import customer_figures

    rng = random.Random(21)
    records = [f"c_{n:03d}" for n in range(60)]
    stores = ["SH-001", "SH-002", "BJ-001"]
    days = [f"2025-{m:02d}-{d:02d}" for m in (10, 11, 12) for d in (1, 9, 17, 28)] + [
        f"2026-{m:02d}-{d:02d}" for m in (9, 10, 11) for d in (2, 3, 15, 30)]
    with store.transaction():
        store.add_purchases([_p(f"p{i}", rng.choice(records), rng.choice(days), 100, store=rng.choice(stores))
                             for i in range(400)])
        store.apply_memberships([Membership(r, rng.choice(records[:10]), "2026-11-07T00:00:00.000000Z")
                                 for r in rng.sample(records[10:], 15)])
        store.put_attributes([_manager(r, rng.choice(["am-1", ""]), 1000) for r in rng.sample(records, 25)])
    before = {"2026-11": "2026-10", "2026-10": "2026-09", "2025-11": "2025-10"}
    months = sorted(set(before) | set(before.values()))
    for scope in (None, ["SH-001"], ["SH-001", "SH-002"], []):
        rows = store.kpi_records(months=months, stores=scope)
        assert store.kpi_customers(before, stores=scope, retention_days=30) == customer_figures(
            store, before, rows, retention_days=30), scope
