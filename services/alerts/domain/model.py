"""The BG/NBD churn model applied to the service's customers (the model itself is ``shared.churn``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from services.alerts.domain.facts import CustomerFacts
from shared.churn import ChurnModel, History, history


@dataclass(frozen=True, slots=True)
class Standing:
    """One customer under a fitted model: the summary, probability alive, expected purchase days."""

    customer_id: str
    history: History
    p_alive: float
    expected: float


def standings(model: ChurnModel, days_by_customer: Mapping[str, list[date]], as_of: date,
              weeks: float) -> list[Standing]:
    """Every customer with a purchase by ``as_of``, scored under ``model`` (one vectorised pass)."""
    rows = [(c, h) for c, days in days_by_customer.items() if (h := history(days, as_of)) is not None]
    hs = [h for _, h in rows]
    alive = model.p_alive(hs)
    expected = model.expected_purchases(hs, weeks)
    return [Standing(c, h, p, e) for (c, h), p, e in zip(rows, alive, expected, strict=True)]


def p_alive_of(model: ChurnModel | None, facts: list[CustomerFacts], as_of: date) -> dict[str, float]:
    """Probability alive of each customer with purchases by ``as_of`` (empty without a model)."""
    if model is None:
        return {}
    days = {f.customer_id: [p.day for p in f.purchases] for f in facts if f.purchases}
    rows = [(c, h) for c, d in days.items() if (h := history(d, as_of)) is not None]
    return dict(zip((c for c, _ in rows), model.p_alive([h for _, h in rows]), strict=True))
