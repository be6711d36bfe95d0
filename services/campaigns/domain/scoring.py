"""Churn-model scores for audience filters: BG/NBD fitted once per launch over every customer's history.

The model (``shared.churn``) reads purchase days only: a customer's repeat days, the weeks from the
first to the last, and the weeks from the first to the day of the launch.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from services.campaigns.domain.audience import CustomerFacts
from shared.churn import WEEK_DAYS, History, NoConvergence, NotEnoughData, fit_converging
from shared.http.errors import Conflict


def history_of(facts: CustomerFacts, on: date) -> History | None:
    """The model's summary of one customer on a day (None without a purchase day by then)."""
    if not facts.purchase_days or facts.first_day is None or facts.last_day is None:
        return None
    first, last = date.fromisoformat(facts.first_day), date.fromisoformat(facts.last_day)
    if first > on:
        return None
    return History(facts.purchase_days - 1, (last - first).days / WEEK_DAYS, (on - first).days / WEEK_DAYS)


def p_alive(facts: Iterable[CustomerFacts], on: date) -> dict[str, float]:
    """Probability each customer with a purchase is still active on a day; Conflict if no model fits."""
    return scores({f.customer_id: h for f in facts if (h := history_of(f, on)) is not None}, on)


def scores(rows: dict[str, History], on: date) -> dict[str, float]:
    """``p_alive`` from the customers' histories (collected a chunk of facts at a time); Conflict if no model fits."""
    try:
        model = fit_converging(rows, on)
    except (NotEnoughData, NoConvergence) as exc:
        raise Conflict("churn_model_unavailable", f"the churn model cannot be fitted: {exc}") from None
    ids = list(rows)
    return dict(zip(ids, model.p_alive([rows[i] for i in ids]), strict=True))
