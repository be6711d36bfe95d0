"""The BG/NBD purchase model (Fader, Hardie & Lee 2005, "Counting your customers the easy way").

A customer who bought regularly and then stopped is more likely gone than one who always bought
rarely: the model says how likely each customer is still active (``p_alive``) and how many purchases
to expect from them. As in the paper, purchases are counted per distinct day and time is in weeks.
Fitting uses ``lifetimes``, which reproduces the paper's figures on its CDNOW sample.

Pure functions over purchase days; the services load the days from their own stores.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date

WEEK_DAYS = 7.0
# Tried in turn: maximum likelihood as in the paper first; a customer base the optimiser cannot fit
# unpenalised gets the smallest L2 penalty that converges, rather than no model at all.
PENALIZERS = (0.0, 0.001, 0.01, 0.1)


@dataclass(frozen=True, slots=True)
class History:
    """One customer's summary as the model reads it (``x``, ``t_x``, ``T`` in the paper)."""

    frequency: int  # repeat purchase days: distinct purchase days after the first
    recency: float  # weeks from the first to the last purchase day
    age: float  # weeks from the first purchase day to the end of the period (T)


def history(days: Iterable[date], as_of: date) -> History | None:
    """The summary of one customer's purchase days up to ``as_of`` (None if none by then)."""
    seen = sorted({d for d in days if d <= as_of})
    if not seen:
        return None
    first, last = seen[0], seen[-1]
    return History(len(seen) - 1, (last - first).days / WEEK_DAYS, (as_of - first).days / WEEK_DAYS)


def histories(days_by_customer: Mapping[str, Iterable[date]], as_of: date) -> dict[str, History]:
    """Summaries of every customer with a purchase by ``as_of``."""
    out = {}
    for customer, days in days_by_customer.items():
        h = history(days, as_of)
        if h is not None:
            out[customer] = h
    return out


@dataclass(frozen=True)
class ChurnModel:
    """Fitted BG/NBD parameters and what they were fitted on."""

    r: float
    alpha: float
    a: float
    b: float
    customers: int
    repeat_purchases: int
    as_of: date
    penalizer: float = 0.0  # the L2 penalty the fit needed (0: maximum likelihood as in the paper)

    def _fitter(self):
        from lifetimes import BetaGeoFitter

        fitter = BetaGeoFitter()
        import pandas as pd

        fitter.params_ = pd.Series({"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b})
        return fitter

    def p_alive(self, rows: list[History]) -> list[float]:
        """Probability that each customer is still active at the end of the period."""
        if not rows:
            return []
        import numpy as np

        f, t_x, big_t = (np.array(v, dtype=float) for v in zip(*((h.frequency, h.recency, h.age) for h in rows),
                                                                  strict=True))
        return [float(p) for p in self._fitter().conditional_probability_alive(f, t_x, big_t)]

    def expected_purchases(self, rows: list[History], weeks: float) -> list[float]:
        """Expected purchase days of each customer in the next ``weeks`` weeks."""
        if not rows:
            return []
        import numpy as np

        f, t_x, big_t = (np.array(v, dtype=float) for v in zip(*((h.frequency, h.recency, h.age) for h in rows),
                                                                  strict=True))
        fitter = self._fitter()
        got = fitter.conditional_expected_number_of_purchases_up_to_time(weeks, f, t_x, big_t)
        return [float(x) for x in got]


class NotEnoughData(ValueError):
    """Too few customers or repeat purchases to fit the model."""


class NoConvergence(RuntimeError):
    """The optimiser found no fit with any of the penalties tried."""


def distinct(rows: Collection[History]):
    """The distinct summaries as arrays (frequency, recency, age) and how many customers each stands for:
    lifetimes' likelihood is a weighted mean over rows, so a fit over them with these weights is the fit over
    every row, at the cost of the distinct ones only."""
    import numpy as np

    n = len(rows)
    table = np.empty((n, 3))
    # Straight into arrays, deduplicated by numpy: building tuples and a dict of them cost a third of a second at
    # 100,000 customers.
    table[:, 0] = np.fromiter((h.frequency for h in rows), float, n)
    table[:, 1] = np.fromiter((h.recency for h in rows), float, n)
    table[:, 2] = np.fromiter((h.age for h in rows), float, n)
    keys, counts = np.unique(table, axis=0, return_counts=True)
    return (keys[:, 0], keys[:, 1], keys[:, 2]), counts.astype(float)


def minimise(fitter: type, args: tuple, size: int, initial=None):
    """The parameters lifetimes' ``fitter`` finds by maximum likelihood over ``args`` (its ``_fit``: BFGS on the
    logarithms of the parameters from ``initial`` or 0.1 each, the gradient by autograd, tolerance 1e-7), without
    what its ``fit`` does after: the Hessian, variance matrix and a data frame of the input, unused here and a third
    of a fit's time at 100,000 customers. Raises lifetimes' ``ConvergenceError`` as its ``fit`` does."""
    import numpy as np
    from autograd import value_and_grad
    from lifetimes.utils import ConvergenceError
    from scipy.optimize import minimize

    out = minimize(value_and_grad(fitter._negative_log_likelihood), jac=True, method=None, tol=1e-7,
                   x0=0.1 * np.ones(size) if initial is None else initial, args=args, options={"disp": False})
    if not out.success:
        raise ConvergenceError(str(out.message))
    return np.exp(out.x)


def fit(rows: Mapping[str, History], as_of: date, *, penalizer: float = 0.0,
        start: ChurnModel | None = None) -> ChurnModel:
    """Fit BG/NBD by maximum likelihood over every customer's summary (from ``start``'s parameters if given)."""
    repeat = sum(h.frequency for h in rows.values())
    if len(rows) < 10 or repeat == 0:
        raise NotEnoughData("the model needs at least 10 customers and some repeat purchases")
    import numpy as np
    from lifetimes import BetaGeoFitter
    from lifetimes.utils import _scale_time

    (f, t_x, big_t), weights = distinct(list(rows.values()))
    # lifetimes optimises the logarithms of the parameters; a kept fit of a nearby date starts it close to the end.
    held = None if start is None else [start.r, start.alpha, start.a, start.b]
    initial = np.log(held) if held and min(held) > 0 else None  # a parameter that underflowed to 0 has no log
    # As BetaGeoFitter.fit scales time (so that the largest age is 10) and scales alpha back.
    scale = _scale_time(big_t)
    r, alpha, a, b = minimise(BetaGeoFitter, (f.astype(int), t_x * scale, big_t * scale, weights, penalizer), 4,
                              initial)
    return ChurnModel(float(r), float(alpha / scale), float(a), float(b), len(rows), repeat, as_of, penalizer)


def fit_converging(rows: Mapping[str, History], as_of: date, *, near: ChurnModel | None = None) -> ChurnModel:
    """:func:`fit` with the smallest penalty in ``PENALIZERS`` that converges (NoConvergence if none).

    ``near``, a kept fit of a nearby date, is a hint: its parameters start the optimiser and the penalty it
    needed is tried first (the smaller ones failed on nearly the same history: each failure costs a whole
    optimisation), then the others in turn."""
    from lifetimes.utils import ConvergenceError

    order = list(PENALIZERS)
    if near is not None and near.penalizer in order:
        order.remove(near.penalizer)
        order.insert(0, near.penalizer)
    for penalizer in order:
        try:
            # lifetimes prints the optimiser's state when it gives up; that is not for the service's output.
            with contextlib.redirect_stdout(io.StringIO()):
                return fit(rows, as_of, penalizer=penalizer, start=near)
        except ConvergenceError:
            continue
    raise NoConvergence("the churn model did not converge on this purchase history")
