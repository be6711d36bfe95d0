"""The Gamma-Gamma spend model and CLV (``shared.clv``): the note's figures on lifetimes' CDNOW sample, and each
customer's figures against lifetimes' own summariser, fitters and CLV function computed here independently."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from fractions import Fraction

import pandas as pd
import pytest
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import summary_data_from_transaction_data

from shared import churn, clv
from tests.integration.alerts.test_churn_model import cdnow

END = date(1997, 9, 30)
NOTE = {"p": 6.25, "q": 3.74, "gamma": 15.44}


def spend_by_day() -> dict[str, dict[date, int]]:
    """Cents per customer and day, the amounts of one day summed (as the store reads them)."""
    out: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for sample_id, day, value in cdnow():
        out[sample_id][day] += int(Decimal(value) * 100)
    return out


@pytest.fixture(scope="module")
def fitted():
    rows = clv.spendings(spend_by_day(), END)
    return rows, churn.fit({c: s.history for c, s in rows.items()}, END), clv.fit(rows, END)


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    """lifetimes alone: its summariser (weeks), BG/NBD and Gamma-Gamma fits, and its CLV function."""
    tx = pd.DataFrame([(s, pd.Timestamp(d), float(v)) for s, d, v in cdnow()], columns=["id", "date", "value"])
    summary = summary_data_from_transaction_data(tx, "id", "date", monetary_value_col="value",
                                                 observation_period_end="1997-09-30", freq="D")
    summary = summary.assign(recency=summary.recency / 7, T=summary["T"] / 7)
    bgf = BetaGeoFitter().fit(summary.frequency, summary.recency, summary["T"])
    repeat = summary[summary.frequency > 0]
    ggf = GammaGammaFitter().fit(repeat.frequency, repeat.monetary_value)
    f, r, t, m = summary.frequency, summary.recency, summary["T"], summary.monetary_value
    summary["p_alive"] = bgf.conditional_probability_alive(f, r, t)
    summary["expected"] = bgf.conditional_expected_number_of_purchases_up_to_time(12 * 4.345, f, r, t)
    summary["aov"] = ggf.conditional_expected_average_profit(f, m)
    summary["clv"] = ggf.customer_lifetime_value(bgf, f, r, t, m, time=12, discount_rate=0.01, freq="W")
    return summary


def test_the_note_figures_from_the_946_repeat_customers_of_the_cdnow_sample(fitted):
    rows, _, model = fitted
    assert (len(rows), model.repeat_customers, model.as_of) == (2357, 946, END)
    for name, want in NOTE.items():
        assert getattr(model, name) == pytest.approx(want, rel=0.01), name


def test_a_customers_spend_is_summed_per_day_and_averaged_over_the_repeat_days_only():
    days = {date(2026, 1, 1): 5000, date(2026, 1, 8): 3000, date(2026, 1, 15): 4500, date(2026, 2, 1): 999}
    s = clv.spending(days, date(2026, 1, 31))
    assert (s.history.frequency, s.repeat_spend_minor, s.average) == (2, 7500, Fraction(75, 2))
    one = clv.spending({date(2026, 1, 1): 5000}, date(2026, 1, 31))
    assert (one.history.frequency, one.repeat_spend_minor, one.average) == (0, 0, None)
    assert clv.spending(days, date(2025, 12, 31)) is None
    # Repeat days that came to nothing cannot enter a gamma-distributed spend.
    nothing = clv.spending({date(2026, 1, 1): 5000, date(2026, 1, 2): 0}, date(2026, 1, 31))
    assert clv.repeat_customers({"a": s, "b": one, "c": nothing}) == {"a": s}


def test_each_customers_average_and_value_equal_lifetimes_own(fitted, reference):
    rows, bgnbd, model = fitted
    for sample_id in ("0004", "0001", "0018", "2357"):  # repeat buyers and one-day buyers
        want, s = reference.loc[sample_id], rows[sample_id]
        assert s.history.frequency == int(want.frequency)
        if s.history.frequency:
            assert float(s.average) == pytest.approx(want.monetary_value, rel=1e-12)
        got = clv.value(bgnbd, model, s, months=12, monthly_rate=0.01, margin=1)
        assert got.p_alive == pytest.approx(want.p_alive, rel=1e-9)
        assert got.expected_purchases == pytest.approx(want.expected, rel=1e-9)
        assert got.expected_average_order_value == clv.money(want.aov)
        assert got.clv == clv.money(want.clv)
        assert got.expected_spend == clv.money(got.expected_purchases * model.expected_average_order_value(s))
        half = clv.value(bgnbd, model, s, months=12, monthly_rate=0.01, margin=0.5)
        assert abs(half.clv * 2 - got.clv) <= Decimal("0.01")
