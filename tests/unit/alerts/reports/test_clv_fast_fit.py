"""The CLV model's first fit made cheap without moving it: BG/NBD over the distinct customer summaries with their
counts as weights, started from a nearby kept fit with the penalty it needed, gives the plain fit's parameters."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from lifetimes import BetaGeoFitter

from crm.bench.clv_fit import history
from crm.bench.reports import CLV_AS_OF
from shared import churn, clv
from tests.unit.alerts.reports.test_clv import END, NOTE, spend_by_day

PAPER = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # Fader, Hardie & Lee 2005 on CDNOW


def params(m: churn.ChurnModel) -> np.ndarray:
    return np.array([m.r, m.alpha, m.a, m.b])


@pytest.fixture(scope="module")
def cdnow():
    return clv.spendings(spend_by_day(), END)


def test_the_weighted_fit_over_distinct_rows_equals_lifetimes_plain_fit_over_every_customer_on_cdnow(cdnow):
    rows = {c: s.history for c, s in cdnow.items()}
    (f, _, _), weights = churn.distinct(list(rows.values()))
    assert len(f) < len(rows) and sum(weights) == len(rows) == 2357
    plain = BetaGeoFitter().fit(np.array([h.frequency for h in rows.values()], dtype=float),
                                np.array([h.recency for h in rows.values()]), np.array([h.age for h in rows.values()]))
    ours = churn.fit(rows, END)
    assert params(ours) == pytest.approx(plain.params_[["r", "alpha", "a", "b"]].to_numpy(), rel=1e-4)
    assert params(ours) == pytest.approx([PAPER[k] for k in ("r", "alpha", "a", "b")], rel=0.01)
    assert ours.penalizer == 0.0


def test_a_fit_started_from_a_nearby_kept_fit_equals_the_cold_fit_on_cdnow(cdnow):
    rows = {c: s.history for c, s in cdnow.items()}
    cold = churn.fit_converging(rows, END)
    later = END + timedelta(days=7)
    near = churn.fit_converging({c: s.history for c, s in clv.spendings(spend_by_day(), later).items()}, later)
    warm = churn.fit_converging(rows, END, near=near)
    assert params(warm) == pytest.approx(params(cold), rel=1e-3)
    assert (warm.penalizer, warm.customers, warm.repeat_purchases) == (0.0, 2357, cold.repeat_purchases)
    spend = clv.fit_converging(cdnow, END)
    assert [spend.p, spend.q, spend.gamma] == pytest.approx([NOTE["p"], NOTE["q"], NOTE["gamma"]], rel=0.01)


def test_on_the_bench_history_the_cold_fit_converges_unpenalised_and_the_warm_fit_gives_its_parameters():
    # crm bench reports' history: customers end after a purchase with a Beta-distributed probability, as BG/NBD
    # assumes; the first fit of a date converges at penalty 0 on its first attempt, as on CDNOW (the history where
    # nobody ever stopped buying made three unpenalised and lightly penalised fits fail first).
    rows = {c: s.history for c, s in history(5_000, 50_000).items()}
    cold = churn.fit_converging(rows, CLV_AS_OF)
    assert cold.penalizer == 0.0 and cold.a > 0.5 and cold.b > 1
    later = CLV_AS_OF + timedelta(days=1)
    near = churn.fit_converging({c: s.history for c, s in history(5_000, 50_000, as_of=later).items()}, later)
    warm = churn.fit_converging(rows, CLV_AS_OF, near=near)
    assert warm.penalizer == 0.0
    assert params(warm) == pytest.approx(params(cold), rel=1e-3)


def test_a_kept_fit_whose_parameter_underflowed_to_zero_still_starts_a_fit(cdnow):
    rows = {c: s.history for c, s in cdnow.items()}
    zero = churn.ChurnModel(0.2, 4.0, 0.0, 2.0, 10, 5, END)
    assert params(churn.fit_converging(rows, END, near=zero)) == pytest.approx(params(churn.fit(rows, END)), rel=1e-3)
