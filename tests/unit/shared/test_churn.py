"""The BG/NBD purchase model reproduces Fader, Hardie & Lee (2005) on the CDNOW sample shipped with lifetimes."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from importlib.resources import files

import pytest

from shared.churn import History, NoConvergence, NotEnoughData, fit, fit_converging, histories, history

CALIBRATION_END = date(1997, 9, 30)  # the paper's 39-week calibration period


def _cdnow_sample_days() -> dict[str, set[date]]:
    """Purchase days per customer: columns master id, sample id, date (YYYYMMDD), CDs, dollar value."""
    days: dict[str, set[date]] = defaultdict(set)
    text = (files("lifetimes") / "datasets" / "CDNOW_sample.txt").read_text()
    for line in text.splitlines():
        _, customer, when, _, _ = line.split()
        days[customer].add(date(int(when[:4]), int(when[4:6]), int(when[6:])))
    return days


def _p_alive(m, h: History) -> float:
    """The closed form of P(alive | x > 0, t_x, T) from the paper, as an independent reference."""
    odds = m.a / (m.b + h.frequency - 1) * ((m.alpha + h.age) / (m.alpha + h.recency)) ** (m.r + h.frequency)
    return 1 / (1 + odds)


def test_history_counts_repeat_purchase_days_in_weeks_up_to_the_end_of_the_period():
    days = [date(1997, 1, 1), date(1997, 1, 8), date(1997, 1, 8), date(1997, 3, 1), date(1997, 3, 9)]
    assert history(days, date(1997, 3, 5)) == History(frequency=2, recency=59 / 7, age=9.0)
    assert history(days, date(1997, 1, 1)) == History(0, 0.0, 0.0)
    assert history(days, date(1996, 12, 31)) is None
    assert histories({"a": days, "b": [date(1998, 1, 1)]}, date(1997, 3, 5)) == {"a": History(2, 59 / 7, 9.0)}


def test_the_fit_on_the_cdnow_sample_gives_the_published_parameters():
    rows = histories(_cdnow_sample_days(), CALIBRATION_END)
    model = fit(rows, CALIBRATION_END)
    assert (model.customers, model.repeat_purchases, model.as_of) == (2357, 2457, CALIBRATION_END)
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    assert {k: getattr(model, k) for k in published} == {k: pytest.approx(v, rel=0.01) for k, v in published.items()}
    # The paper's worked example: 2 repeat purchases, the last at week 30.43 of 38.86 -> 1.226 in the next 39 weeks.
    example = History(2, 30.43, 38.86)
    assert model.expected_purchases([example], 39) == [pytest.approx(1.226, abs=0.001)]
    # A customer who bought regularly and then stopped is less likely active than one who always bought rarely;
    # a customer without repeat purchases is alive by construction of the model.
    regular_then_silent, rare = History(10, 10.0, 38.86), History(1, 30.0, 38.86)
    p_silent, p_rare, p_once = model.p_alive([regular_then_silent, rare, History(0, 0.0, 38.86)])
    assert (p_silent, p_rare) == (pytest.approx(_p_alive(model, regular_then_silent), rel=1e-9),
                                  pytest.approx(_p_alive(model, rare), rel=1e-9))
    assert p_silent < 0.001 and 0.69 < p_rare < 0.70 and p_once == 1.0
    assert model.p_alive([]) == [] and model.expected_purchases([], 39) == []


def test_too_little_history_is_refused_rather_than_fitted():
    few = {str(n): History(1, 1.0, 5.0) for n in range(9)}
    with pytest.raises(NotEnoughData):
        fit(few, CALIBRATION_END)
    with pytest.raises(NotEnoughData):
        fit({str(n): History(0, 0.0, 5.0) for n in range(50)}, CALIBRATION_END)


@pytest.mark.filterwarnings("ignore")
def test_a_base_the_unpenalised_fit_cannot_converge_on_gets_the_smallest_penalty_that_does():
    from lifetimes.utils import ConvergenceError

    day = date(2026, 1, 1)
    alike = {f"c{i}": History(5, 10.0, 10.0) for i in range(50)}  # everyone alive and buying alike
    with pytest.raises(ConvergenceError):
        fit(alike, day)
    assert fit_converging(alike, day) == fit(alike, day, penalizer=0.001)
    # Two groups far from the model's shape: no penalty tried helps, and the caller is told so.
    apart = {**{f"c{i}": History(200, 52.0, 52.0) for i in range(20)},
             **{f"d{i}": History(1, 1.0, 52.0) for i in range(20)}}
    with pytest.raises(NoConvergence):
        fit_converging(apart, day)
