"""Results: lift and its interval against an independent computation, revenue, cost, ROI, breakdowns, days."""

from __future__ import annotations

import math
from decimal import Decimal
from statistics import NormalDist

import pytest

from services.campaigns.domain.attribution import Credit, Outcome, Sale
from services.campaigns.domain.definition import Costs
from services.campaigns.domain.results import (
    MemberResult,
    PeriodSales,
    figures,
    lift,
    money,
    purchase_band,
    report,
    touch_band,
)


def reference(conv_t: int, n_t: int, conv_c: int, n_c: int) -> dict[str, float]:
    """Textbook formulas with the standard library's normal distribution (no scipy)."""
    z975 = NormalDist().inv_cdf(0.975)
    p_t, p_c = conv_t / n_t, conv_c / n_c
    half = z975 * math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    pooled = (conv_t + conv_c) / (n_t + n_c)
    z = (p_t - p_c) / math.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
    se_log = math.sqrt(1 / conv_t - 1 / n_t + 1 / conv_c - 1 / n_c)
    rr = p_t / p_c
    return {"absolute": p_t - p_c, "ci_low": p_t - p_c - half, "ci_high": p_t - p_c + half, "z": z,
            "p_value": 2 * (1 - NormalDist().cdf(abs(z))), "relative": rr - 1,
            "relative_ci_low": rr * math.exp(-z975 * se_log) - 1, "relative_ci_high": rr * math.exp(z975 * se_log) - 1}


@pytest.mark.parametrize("counts", [(30, 200, 10, 100), (4, 6, 2, 4), (512, 9_000, 80, 1_000), (1, 50, 3, 40)])
def test_lift_matches_an_independent_computation(counts):
    got = lift(*counts)
    want = reference(*counts)
    for name, value in want.items():
        assert getattr(got, name) == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_lift_by_hand_for_thirty_of_two_hundred_against_ten_of_a_hundred():
    got = lift(30, 200, 10, 100)
    assert got.absolute == pytest.approx(0.05)
    assert (round(got.ci_low, 5), round(got.ci_high, 5)) == (-0.02685, 0.12685)
    assert round(got.z, 4) == 1.2010 and round(got.p_value, 4) == 0.2298
    assert got.relative == pytest.approx(0.5)


def test_degenerate_groups():
    assert lift(3, 10, 0, 0) is None and lift(0, 0, 3, 10) is None
    none_convert = lift(0, 10, 0, 10)
    assert (none_convert.absolute, none_convert.ci_low, none_convert.ci_high, none_convert.p_value) == (0, 0, 0, 1)
    assert none_convert.relative is None
    no_control_converter = lift(3, 10, 0, 10)
    assert no_control_converter.relative is None and no_control_converter.p_value < 1


def unit(cid: str, group: str, *, converted: bool = False, revenue: int = 0, orders: int = 0, tier=None,
         band="25-34", store="SH-001", returning=True, day=None) -> MemberResult:
    return MemberResult(cid, group, tier, band, store, returning,
                Outcome(converted, revenue, orders, 0 if converted else None, day))


def test_report_revenue_cost_roi_and_breakdowns_by_hand():
    units = [
        unit("t1", "treatment", converted=True, revenue=30_000, orders=2, tier="gold", day="2026-03-12"),
        unit("t2", "treatment", converted=True, revenue=10_001, orders=1, returning=False, day="2026-03-12"),
        unit("t3", "treatment", tier="gold", store="SH-002"),
        unit("t4", "treatment", store="SH-002"),
        unit("c1", "control", converted=True, revenue=5_000, orders=1, tier="gold", day="2026-03-13"),
        unit("c2", "control", store="SH-002"),
    ]
    sale = Sale("t1", "pos/SH-001", "s1", "o1", 20_000, 0, "2026-03-12")
    credited = [Credit("cmp_a", "t1", sale, 20_000, 20_000),
                Credit("cmp_a", "t1", Sale("t1", "pos/SH-001", "s2", "o2", 10_000, 0, "2026-03-14"), 10_000, 10_000),
                Credit("cmp_a", "t2", Sale("t2", "pos/SH-001", "s3", "o3", 10_001, 0, "2026-03-12"), 10_001, 10_001),
                Credit("cmp_a", "c1", Sale("c1", "pos/SH-001", "s4", "o4", 5_000, 0, "2026-03-13"), 5_000, 5_000),
                Credit("cmp_b", "t3", sale, 20_000, 20_000)]  # another campaign's credit: not ours
    rep = report(units, credited, campaign_id="cmp_a",
                 costs=Costs(fixed=Decimal("100.00"), per_touch=Decimal("0.25")), touches=4,
                 period=PeriodSales(0, 1, orders=12, gross_minor=100_000, refunded_minor=30_000))
    o = rep.overall
    t = o.treatment
    assert (t.size, t.converters, t.orders, t.revenue_minor) == (4, 2, 3, 40_001)
    assert o.treatment.average_order_value == Decimal("133.34")  # 400.01 / 3 = 133.336…
    assert o.treatment.revenue_per_member == Decimal("100.00")  # 400.01 / 4 = 100.0025
    assert (o.control.size, o.control.converters, o.control.revenue_minor) == (2, 1, 5_000)
    # 400.01 - 50.00 * 4 / 2
    assert o.incremental_revenue == Decimal("300.01")
    assert o.incremental_conversions == pytest.approx((2 / 4 - 1 / 2) * 4)
    assert rep.cost == Decimal("101.00")
    assert rep.roi == Decimal("1.9704")  # (300.01 - 101) / 101 = 1.97039…
    tiers = {s.key: (s.treatment.size, s.treatment.converters, s.control.size, s.control.converters)
             for s in rep.breakdowns["tier"]}
    assert tiers == {"gold": (2, 1, 1, 1), "unknown": (2, 1, 1, 0)}
    # Each of the 4 treatment members carries 25.25 of the 101.00. Gold: 300.00 - 50.00 * 2 / 1 = 200.00
    # incremental, (200 - 50.50) / 50.50 = 2.96039…; unknown: 100.01 - 0, (100.01 - 50.50) / 50.50 = 0.98039…
    assert {s.key: (s.cost, s.roi) for s in rep.breakdowns["tier"]} == {
        "gold": (Decimal("50.50"), Decimal("2.9604")), "unknown": (Decimal("50.50"), Decimal("0.9804"))}
    assert (o.cost, o.roi) == (Decimal("101.00"), rep.roi)
    # 400.01 and 300.01 of the period's 700.00 net sales.
    assert (rep.share_of_sales, rep.incremental_share_of_sales) == (Decimal("0.5714"), Decimal("0.4286"))
    stores = {s.key: (s.treatment.size, s.control.size) for s in rep.breakdowns["home_store"]}
    assert stores == {"SH-001": (2, 1), "SH-002": (2, 1)}
    assert [(d.day, d.group, d.new_converters, d.returning_converters, d.orders, d.revenue_minor, d.new_orders,
             d.returning_orders) for d in rep.daily] == [("2026-03-12", "treatment", 1, 1, 2, 30_001, 1, 1),
                                                         ("2026-03-13", "control", 0, 1, 1, 5_000, 0, 1),
                                                         ("2026-03-14", "treatment", 0, 0, 1, 10_000, 0, 1)]


def test_history_segments_band_purchases_and_touches_before_the_launch():
    assert [purchase_band(n) for n in (None, 0, 1, 2, 4, 5, 40)] == [None, "0", "1", "2-4", "2-4", "5+", "5+"]
    assert [touch_band(n) for n in (None, 0, 1, 2, 3, 9)] == [None, "0", "1", "2", "3+", "3+"]
    units = [MemberResult("t1", "treatment", None, "<25", None, True, Outcome(True, 100, 1, 0, "d"), 3, 0),
             MemberResult("t2", "treatment", None, "<25", None, False, Outcome(), 0, 2),
             # launched before they were kept:
             MemberResult("c1", "control", None, "<25", None, True, Outcome(), None, None)]
    rep = report(units, [], campaign_id="x", costs=Costs(), touches=2)
    assert {s.key: (s.treatment.size, s.control.size) for s in rep.breakdowns["purchases_before"]} == {
        "0": (1, 0), "2-4": (1, 0), "unknown": (0, 1)}
    assert {s.key: (s.treatment.size, s.control.size) for s in rep.breakdowns["touches_before"]} == {
        "0": (1, 0), "2": (1, 0), "unknown": (0, 1)}


def test_no_cost_no_roi_and_money_rounds_half_even():
    rep = report([unit("t", "treatment"), unit("c", "control")], [], campaign_id="x", costs=Costs(), touches=1)
    assert rep.roi is None and rep.cost == Decimal("0.00")
    assert rep.share_of_sales is None  # no period given
    empty = report([], [], campaign_id="x", costs=Costs(), touches=0,
                   period=PeriodSales(0, 1, orders=0, gross_minor=0, refunded_minor=0))
    assert (empty.share_of_sales, empty.overall.cost, empty.roi) == (None, None, None)
    assert money(1) == Decimal("0.01") and str(money(250)) == "2.50"
    assert figures([]).conversion_rate is None and figures([]).average_order_value is None
