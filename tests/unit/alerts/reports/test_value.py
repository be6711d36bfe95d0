"""Customer value's pure rules (issue 15, part 4): every figure worked out by hand in the test."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

from services.alerts.reports.value import (
    Level,
    ValueTotals,
    level_sizes,
    period_start,
    pyramid,
    quintiles,
    rfm,
    segment_of,
    stage_of,
    value_report,
)

AS_OF = date(2026, 6, 30)


def _t(cid: str, net: int, *, period_days: int = 1, days: int | None = None, first: date = date(2026, 6, 1),
       last: date = date(2026, 6, 1), orders: int | None = None) -> ValueTotals:
    return ValueTotals(cid, net, orders or period_days, period_days, days or period_days, first, last)


def test_the_period_is_the_months_ending_on_as_of_clamped_to_short_months():
    assert period_start(date(2026, 6, 30), 12) == date(2025, 7, 1)
    assert period_start(date(2026, 3, 31), 1) == date(2026, 3, 1)  # 2026-02-28 + 1 day
    assert period_start(date(2026, 1, 15), 1) == date(2025, 12, 16)
    assert period_start(date(2024, 2, 29), 12) == date(2023, 3, 1)


def test_level_sizes_round_each_cumulative_cut_up():
    # 1% / 5% / 20% / 100% of n, rounded up, differences between the cuts.
    assert level_sizes(200) == [2, 8, 30, 160]
    assert level_sizes(10) == [1, 0, 1, 8]  # ceil(0.1)=1, ceil(0.5)=1, ceil(2)=2, 10
    assert level_sizes(1) == [1, 0, 0, 0]
    assert level_sizes(0) == [0, 0, 0, 0]
    assert level_sizes(101) == [2, 4, 15, 80]  # cuts at ceil(1.01)=2, ceil(5.05)=6, ceil(20.2)=21, 101


def test_the_pyramid_ranks_by_net_spend_and_breaks_ties_by_customer_id():
    # Ten customers; c03 and c01 tie at the top spend: c01 comes first, so it alone is the top level.
    spends = {"c01": 9000, "c03": 9000, "c02": 5000, "c04": 100, "c05": 100, "c06": 100, "c07": 100, "c08": 100,
              "c09": 100, "c10": 0}
    rows = [_t(c, s) for c, s in spends.items()]
    rows.append(_t("idle", 99999, period_days=0, days=3, first=date(2024, 1, 1), last=date(2025, 1, 1)))
    levels, level_of = pyramid(rows)
    total = 9000 + 9000 + 5000 + 600
    assert levels == [
        Level("top", 1, 9000, Fraction(1, 10), Fraction(9000, total)),
        Level("big", 0, 0, Fraction(0), Fraction(0)),
        Level("medium", 1, 9000, Fraction(1, 10), Fraction(9000, total)),
        Level("small", 8, 5600, Fraction(8, 10), Fraction(5600, total)),
    ]
    assert level_of["c01"] == "top" and level_of["c03"] == "medium" and level_of["c02"] == "small"
    assert "idle" not in level_of  # no purchase day in the period: not ranked


def test_a_period_with_no_positive_revenue_has_no_revenue_shares():
    levels, _ = pyramid([_t("a", 0), _t("b", -500)])
    assert [x.revenue_share for x in levels] == [None] * 4
    assert [x.customers for x in levels] == [1, 0, 0, 1]


def test_quintiles_give_equal_values_one_score_from_the_customers_strictly_below():
    # n = 10: 1 + 5 × below // 10; the values 1,1,1 share below 0; 2 has 3 below; 5,5 have 4 below...
    values = {"a": 1, "b": 1, "c": 1, "d": 2, "e": 5, "f": 5, "g": 7, "h": 8, "i": 9, "j": 9}
    assert quintiles(values) == {"a": 1, "b": 1, "c": 1, "d": 2, "e": 3, "f": 3, "g": 4, "h": 4, "i": 5, "j": 5}
    assert quintiles({"a": 3, "b": 3}) == {"a": 1, "b": 1}  # all equal: all lowest
    assert quintiles({c: i for i, c in enumerate("vwxyz")}) == {"v": 1, "w": 2, "x": 3, "y": 4, "z": 5}


def test_every_score_triple_has_exactly_one_segment_and_the_table_reads_as_documented():
    for r in range(1, 6):
        for f in range(1, 6):
            for m in range(1, 6):
                # The catch-all is reached exactly by the triples no other rule takes.
                assert (segment_of(r, f, m) == "need_attention") == (r == 3 and f <= 3)
    assert segment_of(5, 5, 5) == "champions"
    assert segment_of(5, 5, 3) == "loyal"
    assert segment_of(3, 4, 1) == "loyal"
    assert segment_of(4, 3, 5) == "promising"
    assert segment_of(2, 3, 5) == "at_risk"
    assert segment_of(1, 2, 5) == "hibernating"
    assert segment_of(3, 3, 3) == "need_attention"


def test_rfm_scores_recency_frequency_and_money_over_the_period():
    # Five customers, last purchase 0, 10, 10, 40, 90 days before as_of; 5, 1, 3, 2, 1 days; spends.
    rows = [_t("a", 50000, period_days=5, last=date(2026, 6, 30)),
            _t("b", 1000, period_days=1, last=date(2026, 6, 20)),
            _t("c", 20000, period_days=3, last=date(2026, 6, 20)),
            _t("d", 1000, period_days=2, last=date(2026, 5, 31)),
            _t("e", 300, period_days=1, last=date(2026, 4, 1))]
    got = rfm(rows, as_of=AS_OF)
    # R: -days 0 > -10 = -10 > -30 > -90: below counts a 4, b/c 2, d 1, e 0 -> 1 + below.
    # F: 5 > 3 > 2 > 1 = 1: a 4, c 3, d 2, b/e 0.  M: 50000 > 20000 > 1000 = 1000 > 300: a 4, c 3, b/d 1, e 0.
    assert {c: (x.r, x.f, x.m, x.segment) for c, x in got.items()} == {
        "a": (5, 5, 5, "champions"), "b": (3, 1, 2, "need_attention"), "c": (3, 4, 4, "loyal"),
        "d": (2, 3, 2, "at_risk"), "e": (1, 1, 1, "hibernating")}


def test_lifecycle_stages_follow_the_documented_rules():
    one = _t("x", 100, days=1, first=date(2026, 6, 1), last=date(2026, 6, 1))
    assert stage_of(one, as_of=AS_OF) == "exploration"
    # One purchase 181 days ago: lapsed (180 is still exploration).
    assert stage_of(_t("x", 1, first=date(2025, 12, 31), last=date(2025, 12, 31)), as_of=AS_OF) == "decline"
    assert stage_of(_t("x", 1, first=date(2026, 1, 1), last=date(2026, 1, 1)), as_of=AS_OF) == "exploration"
    # Three days over 20 days (mean interval 10): silent 59 days is still formation (under 60)...
    f = _t("x", 1, days=3, first=date(2026, 4, 12), last=date(2026, 5, 2))
    assert stage_of(f, as_of=AS_OF) == "formation"  # gap 59
    # ...60 days silent is more than twice the rhythm and at least 60: decline.
    assert stage_of(_t("x", 1, days=3, first=date(2026, 4, 11), last=date(2026, 5, 1)), as_of=AS_OF) == "decline"
    # A slow rhythm: 3 days over 200 days (mean 100); 100 days silent is within twice the rhythm: formation.
    assert stage_of(_t("x", 1, days=3, first=date(2025, 9, 3), last=date(2026, 3, 22)), as_of=AS_OF) == "formation"
    # Four days, first 365 days ago, last purchase 10 days ago: stable; first 364 days ago: still forming.
    assert stage_of(_t("x", 1, days=4, first=date(2025, 6, 30), last=date(2026, 6, 20)), as_of=AS_OF) == "stability"
    assert stage_of(_t("x", 1, days=4, first=date(2025, 7, 1), last=date(2026, 6, 20)), as_of=AS_OF) == "formation"
    assert stage_of(_t("x", 1, days=3, first=date(2024, 6, 30), last=date(2026, 6, 20)), as_of=AS_OF) == "formation"


def test_the_report_counts_segments_and_stages_and_lists_idle_customers_last():
    rows = [_t("b", 200), _t("a", 500),
            _t("old", 0, period_days=0, days=2, first=date(2024, 1, 1), last=date(2024, 2, 1))]
    report = value_report(rows, as_of=AS_OF, months=12)
    assert report.start == date(2025, 7, 1)
    assert (report.customers, report.revenue_minor) == (2, 700)
    assert [(s.customer_id, s.level, s.stage) for s in report.standings()] == [
        ("a", "top", "exploration"), ("b", "small", "exploration"), ("old", None, "decline")]
    # R and F tie (1 + 0 below); M: a has 1 of 2 below -> 1 + 5 // 2 = 3. R 1, F 1: hibernating both.
    assert [(s.rfm.r, s.rfm.f, s.rfm.m) for s in report.standings()[:2]] == [(1, 1, 3), (1, 1, 1)]
    assert report.segments == {"champions": 0, "loyal": 0, "promising": 0, "at_risk": 0, "hibernating": 2,
                               "need_attention": 0}
    assert report.stages == {"exploration": 2, "formation": 0, "stability": 0, "decline": 1}


def test_csv_money_is_the_exact_two_place_decimal():
    from services.alerts.reports_value_api import _money
    from shared.contract.facts import from_minor

    for minor in (0, 5, -5, 100, -199, 123456, -100, 10**12 + 7):
        assert _money(minor) == str(from_minor(minor))
