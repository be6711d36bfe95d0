"""Issue 15, kpi: the pure parts, by hand: what a batch adds to the aggregates, and a month's figures."""

from __future__ import annotations

from services.alerts.reports.kpi import figures, first_days, month_shift
from services.alerts.reports.kpi_aggregate import Order, Sale, fold_sales
from services.alerts.store.kpi_rows import RecordMonth


def test_a_refund_waits_for_its_purchase_and_takes_at_most_the_order():
    waiting = fold_sales([], [("o1", 3000)], held={}, firsts={})
    assert waiting.orders == [Order("o1", refunded_minor=3000)] and not waiting.totals
    (held,) = waiting.orders
    came = fold_sales([Sale("o1", "S1", "2026-11-03", "r1", 2000)], [("o1", 500)], held={"o1": held}, firsts={})
    assert came.orders == [Order("o1", "S1", "2026-11", "r1", 2000, 3500)]
    # 1 order of 20.00, refunds 35.00 capped at 20.00; the record's net spend is 0.
    assert dict(came.totals) == {("S1", "2026-11"): [1, 2000, 2000, 1, 2000, 2000]}
    assert dict(came.records) == {("S1", "2026-11", "r1"): [1 << 2, 1, 0]}
    assert came.firsts == {"r1": ("2026-11-03", None)}
    more = fold_sales([], [("o1", 100)], held={"o1": came.orders[0]}, firsts={})
    assert (dict(more.totals), more.orders[0].refunded_minor) == ({}, 3600)  # nothing left to take


def test_first_days_follow_late_purchases_and_merged_records():
    ch = fold_sales([Sale("o2", "S1", "2026-11-09", "r1", 1), Sale("o3", "S1", "2026-10-30", "r1", 1)], [],
                    held={}, firsts={"r1": ("2026-11-03", None)})
    assert ch.firsts == {"r1": ("2026-10-30", "2026-11-03")}
    assert first_days({"c": ["r1", "r2", "r3"]}, {"r1": ("2026-10-30", "2026-11-03"),
                                                  "r2": ("2026-10-30", "2026-11-01")}) == {
        "c": ("2026-10-30", "2026-11-01")}  # one day in two records is one day


def test_months_shift_across_years():
    assert [month_shift("2026-01", -1), month_shift("2026-11", -12), month_shift("2025-12", 1)] == [
        "2025-12", "2025-11", "2026-01"]


def test_tenure_buckets_count_months_from_the_first_purchase_month():
    firsts = {f"c{i}": (day, None) for i, day in enumerate(
        ["2026-11-30", "2026-10-01", "2026-09-15", "2026-08-31", "2026-06-01", "2026-05-31", "2025-12-01",
         "2025-11-30", "2024-12-01", "2024-11-30"])}
    rows = [RecordMonth("2026-11", "S1", c, 1, 1, 100) for c in firsts]
    got = figures("2026-11", totals=[], rows=rows, previous=[], owner={c: c for c in firsts}, firsts=firsts,
                  managed={"c0", "zz"}, retention_days=90)
    # ages in months: 0, 1, 2, 3, 5, 6, 11, 12, 23, 24
    assert got.tenure == {"new": 1, "1_2_months": 2, "3_5_months": 2, "6_11_months": 2, "12_23_months": 2,
                          "24_months_plus": 1}
    assert (got.customers, got.new_customers, got.managed_customers) == (10, 1, 1)


def test_new_customer_retention_counts_the_window_inclusively():
    firsts = {"a": ("2026-11-01", "2027-01-30"), "b": ("2026-11-01", "2027-01-31"), "c": ("2026-11-02", None)}
    rows = [RecordMonth("2026-11", "S1", c, 1, 1, 100) for c in firsts]
    got = figures("2026-11", totals=[], rows=rows, previous=[], owner={c: c for c in firsts}, firsts=firsts,
                  managed=set(), retention_days=90)
    # a: 90 days later (in), b: 91 (out), c: never.
    assert (got.new_customers, got.returning_new) == (3, 1)
