"""Issue 15, satisfaction's figures: the score boundaries of NPS and CSAT, exact rounding, months, reasons."""

from __future__ import annotations

from fractions import Fraction

import pytest

from services.alerts.reports.satisfaction import (
    Loyalty,
    day_counts,
    months_back,
    parse_month,
    reason_problem,
    rounded,
    scores,
)


def _counts(*given: int) -> list[int]:
    out = [0] * 11
    for s in given:
        out[s] += 1
    return out


@pytest.mark.parametrize(("score", "promoter", "passive", "detractor", "satisfied"), [
    (0, 0, 0, 1, 0), (6, 0, 0, 1, 0), (7, 0, 1, 0, 1), (8, 0, 1, 0, 1), (9, 1, 0, 0, 1), (10, 1, 0, 0, 1)])
def test_each_score_falls_on_its_side_of_the_boundaries(score, promoter, passive, detractor, satisfied):
    s = scores(_counts(score))
    assert (s.responses, s.promoters, s.passives, s.detractors, s.satisfied) == (
        1, promoter, passive, detractor, satisfied)
    assert s.nps == 100.0 * (promoter - detractor) and s.csat == float(satisfied)


def test_nps_and_csat_are_exact_fractions_rounded_half_even_once():
    s = scores(_counts(6, 7, 8, 9, 9, 10, 3))
    assert (s.nps, s.csat) == (14.29, 0.7143)  # 100/7 = 14.2857…, 5/7 = 0.714285…
    assert rounded(Fraction(1, 8), 2) == 0.12 and rounded(Fraction(3, 8), 2) == 0.38  # half to even
    empty = scores([0] * 11)
    assert (empty.responses, empty.nps, empty.csat) == (0, None, None)


def test_months_back_crosses_years_and_a_bad_month_is_refused():
    assert months_back("2026-02", 6) == ["2025-09", "2025-10", "2025-11", "2025-12", "2026-01", "2026-02"]
    assert parse_month("2026-12") == (2026, 12)
    for bad in ("2026-00", "2026-13", "2026-1", "202611"):
        with pytest.raises(ValueError):
            parse_month(bad)


def test_the_loyal_share_counts_distinct_days_of_merged_masks():
    # c1: day 1 and day 1 again in one month (two records): one day; day 2 of another month: two days.
    counts = day_counts({("c1", "2026-10"): 0b1 | 0b1, ("c1", "2026-11"): 0b10, ("c2", "2026-11"): 0b101})
    assert counts == {"c1": 2, "c2": 2}
    assert Loyalty(3, 2).share == 0.6667 and Loyalty(0, 0).share is None


@pytest.mark.parametrize(("alert_type", "reason", "text", "problem"), [
    ("churn_red", "price_competition", None, None),
    ("complaint", "other", "moved to another city", None),
    ("churn_model", "novelty_or_habit", "tries every new place", None),
    ("churn_yellow", None, None, None),
    ("birthday", None, None, None),
    ("complaint", "other", None, ("reason_text_required", "body.reason_text")),
    ("complaint", "other", "   ", ("reason_text_required", "body.reason_text")),
    ("survey_low", "price_competition", None, ("reason_not_applicable", "body.reason")),
    ("birthday", "other", "x", ("reason_not_applicable", "body.reason")),
    ("churn_red", None, "text alone", ("reason_required", "body.reason")),
])
def test_a_reason_is_for_churn_and_complaint_alerts_and_other_needs_a_text(alert_type, reason, text, problem):
    found = reason_problem(alert_type=alert_type, reason=reason, reason_text=text)
    assert (found[:2] if found else None) == problem
