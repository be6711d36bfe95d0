"""The Gamma-Gamma model of spend per purchase (Fader & Hardie 2013, "The Gamma-Gamma Model of Monetary Value")
beside BG/NBD (``shared.churn``), and the customer lifetime value the two give together.

BG/NBD says how many purchases to expect from a customer; Gamma-Gamma says how much each will be worth: a
customer's average spend is pulled towards the population's mean, the more so the fewer purchases it rests on.
As in the note (and in ``lifetimes``' summariser), purchases are counted per distinct day with the amounts of one
day summed, and a customer's average spend is taken over the repeat days only (the first day is left out); the
model is fitted over the repeat customers, money in major units (yuan; the fitted ``gamma`` is in them).
Fitting uses ``lifetimes``' ``GammaGammaFitter``, which reproduces the note's figures on the CDNOW sample.

CLV is the discounted sum of the margin on the purchases expected month by month over a horizon, as
``lifetimes.GammaGammaFitter.customer_lifetime_value`` computes it (months of ``MONTH_WEEKS`` weeks, each
discounted at the end of the month).

Pure functions over each customer's spend per purchase day; the services load the days from their own stores.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

from shared.churn import WEEK_DAYS, ChurnModel, History, NoConvergence, NotEnoughData, minimise

# lifetimes' month in weeks (its ``freq="W"`` factor), so CLV here equals lifetimes' own.
MONTH_WEEKS = 4.345
PENALIZERS = (0.0, 0.001, 0.01, 0.1)
_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Spending:
    """One customer's purchase days and spend as both models read them."""

    history: History
    repeat_spend_minor: int  # spend (fen) over the repeat days: every purchase day after the first

    @property
    def average(self) -> Fraction | None:
        """Exact average spend per repeat day in major units (None without a repeat day)."""
        if self.history.frequency == 0:
            return None
        return Fraction(self.repeat_spend_minor, 100 * self.history.frequency)


def spending(spend_by_day: Mapping[date, int], as_of: date) -> Spending | None:
    """The summary of one customer's spend (fen) per purchase day up to ``as_of`` (None if no purchase by then)."""
    # One pass per customer, no sorting (a dict's days are distinct): this runs for every customer of a fit.
    days = [d for d in spend_by_day if d <= as_of]
    if not days:
        return None
    first, last = min(days), max(days)
    h = History(len(days) - 1, (last - first).days / WEEK_DAYS, (as_of - first).days / WEEK_DAYS)
    return Spending(h, sum(spend_by_day[d] for d in days) - spend_by_day[first])


def summarised(first: date, last: date, days: int, spend_minor: int, first_spend_minor: int, as_of: date) -> Spending:
    """The summary :func:`spending` gives, from a customer's purchase days as a database sums them: the first and
    last day up to ``as_of``, how many days, the spend (fen) of them all and of the first day."""
    h = History(days - 1, (last - first).days / WEEK_DAYS, (as_of - first).days / WEEK_DAYS)
    return Spending(h, spend_minor - first_spend_minor)


def spendings(by_customer: Mapping[str, Mapping[date, int]], as_of: date) -> dict[str, Spending]:
    """Summaries of every customer with a purchase by ``as_of``."""
    out = {}
    for customer, days in by_customer.items():
        s = spending(days, as_of)
        if s is not None:
            out[customer] = s
    return out


def spend_by_customer(rows: Iterable[tuple[str, str, int]], owner: Mapping[str, str]) -> dict[str, dict[date, int]]:
    """Spend per customer and day from (record, ISO day, spend) rows, each record counted under
    ``owner.get(record, record)``; two records' spend on one day is one day's."""
    out: dict[str, dict[date, int]] = {}
    days: dict[str, date] = {}  # a few hundred distinct days among a million rows: parsed once each
    for record, text, amount in rows:
        day = days.get(text)
        if day is None:
            day = days[text] = date.fromisoformat(text)
        held = out.setdefault(owner.get(record, record), {})
        held[day] = held.get(day, 0) + amount
    return out


def repeat_customers(rows: Mapping[str, Spending]) -> dict[str, Spending]:
    """The customers Gamma-Gamma is fitted on: a repeat day and a positive average spend over the repeat days
    (the model's spend is gamma distributed, so a customer whose repeat days came to nothing cannot enter it)."""
    return {c: s for c, s in rows.items() if s.history.frequency > 0 and s.repeat_spend_minor > 0}


@dataclass(frozen=True)
class SpendModel:
    """Fitted Gamma-Gamma parameters and what they were fitted on."""

    p: float
    q: float
    gamma: float  # lifetimes calls it ``v``: the scale, in major units
    repeat_customers: int
    as_of: date

    def expected_average_order_value(self, s: Spending) -> float:
        """Expected spend per future purchase day of a customer (major units): a weighted average of the
        customer's own average and the population mean ``p * gamma / (q - 1)`` (the note's equation 5)."""
        mean = self.p * self.gamma / (self.q - 1)
        x = s.history.frequency
        if x == 0 or s.repeat_spend_minor <= 0:
            return mean
        weight = self.p * x / (self.p * x + self.q - 1)
        return weight * float(s.average) + (1 - weight) * mean  # type: ignore[arg-type]


def fit(rows: Mapping[str, Spending], as_of: date, *, penalizer: float = 0.0) -> SpendModel:
    """Fit Gamma-Gamma by maximum likelihood over the repeat customers among ``rows``."""
    repeat = list(repeat_customers(rows).values())
    if len(repeat) < 10:
        raise NotEnoughData("the spend model needs at least 10 customers with a repeat purchase")
    import numpy as np
    from lifetimes import GammaGammaFitter

    # int / int is the correctly rounded quotient, as float(s.average) is, without a Fraction per customer.
    frequency = np.array([s.history.frequency for s in repeat], dtype=float)
    average = np.array([s.repeat_spend_minor / (100 * s.history.frequency) for s in repeat], dtype=float)
    # GammaGammaFitter.fit's own optimisation, without the Hessian and the rest it computes after it.
    p, q, v = minimise(GammaGammaFitter, (frequency, average, np.ones_like(frequency, dtype=int), penalizer), 3)
    return SpendModel(float(p), float(q), float(v), len(repeat), as_of)


def fit_converging(rows: Mapping[str, Spending], as_of: date) -> SpendModel:
    """:func:`fit` with the smallest penalty in ``PENALIZERS`` that converges (NoConvergence if none)."""
    from lifetimes.utils import ConvergenceError

    for penalizer in PENALIZERS:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                model = fit(rows, as_of, penalizer=penalizer)
        except ConvergenceError:
            continue
        if model.q > 1:  # the population mean p*gamma/(q-1) exists only then
            return model
    raise NoConvergence("the spend model did not converge on this purchase history")


@dataclass(frozen=True)
class Value:
    """One customer's value under both models, over a horizon."""

    p_alive: float
    expected_purchases: float  # purchase days expected over the horizon
    expected_average_order_value: Decimal  # per purchase day, major units
    expected_spend: Decimal  # expected purchases x expected average order value, undiscounted
    clv: Decimal  # margin x the monthly spend discounted to today


def money(x: float) -> Decimal:
    """Major units to a two-place decimal (half even)."""
    return Decimal(float(x)).quantize(_CENT, rounding=ROUND_HALF_EVEN)


def exact_money(x: Fraction) -> Decimal:
    """An exact amount in major units to a two-place decimal (half even, exactly)."""
    return Decimal(round(x * 100)).scaleb(-2)


def value(churn: ChurnModel, spend: SpendModel, s: Spending, *, months: int, monthly_rate: float,
          margin: float) -> Value:
    """Expected purchases, average order value, spend and discounted CLV of one customer over ``months``."""
    aov = spend.expected_average_order_value(s)
    h = [s.history]
    # Expected purchases up to the end of each month (cumulative); month 0 has none yet.
    cumulative = [0.0] + [churn.expected_purchases(h, m * MONTH_WEEKS)[0] for m in range(1, months + 1)]
    discounted = sum((cumulative[m] - cumulative[m - 1]) * aov / (1 + monthly_rate) ** m for m in range(1, months + 1))
    return Value(churn.p_alive(h)[0], cumulative[-1], money(aov), money(cumulative[-1] * aov),
                 money(margin * discounted))


def spend_model_doc(model: SpendModel) -> dict:
    """A spend model's fields as a stored document, ``as_of`` as ISO text."""
    return {"p": model.p, "q": model.q, "gamma": model.gamma, "repeat_customers": model.repeat_customers,
            "as_of": model.as_of.isoformat()}


def spend_model_of(doc: Mapping) -> SpendModel:
    """The spend model a stored document holds."""
    return SpendModel(float(doc["p"]), float(doc["q"]), float(doc["gamma"]), int(doc["repeat_customers"]),
                      date.fromisoformat(doc["as_of"]))
