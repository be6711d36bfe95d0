"""Issue 15, clv: the customer-value model of the service's customers: BG/NBD (kept as the churn model is) beside
Gamma-Gamma, each fitted once per as-of date and kept, and one customer's value under both
(the models themselves are ``shared.churn`` and ``shared.clv``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from services.alerts.config import ClvSettings
from services.alerts.handlers import Deps
from services.alerts.handlers.commands import model_as_of
from shared.churn import ChurnModel, NoConvergence, NotEnoughData
from shared.clock import iso_utc
from shared.clv import Spending, SpendModel, Value, fit_converging, spending, value
from shared.http.errors import NotFound, Unavailable

# A mark per as-of date whose spend model did not converge (its value: when that was found).
_NO_CONVERGENCE = "clv_spend_no_convergence:"


@dataclass(frozen=True)
class ClvModel:
    """Both fitted models as of one date, and when the spend model was fitted."""

    bgnbd: ChurnModel
    gamma_gamma: SpendModel
    fitted_at: str


def clv_model_as_of(as_of: date, *, deps: Deps) -> ClvModel:
    """BG/NBD and Gamma-Gamma fitted as of a date (today at the latest): the kept fits, or new ones kept (after a
    fit in flight, which may be this one)."""
    churn, held = deps.store.model(as_of), deps.store.spend_model(as_of)
    if churn is not None and held is not None:  # both kept (and so as_of was checked when they were fitted)
        return ClvModel(churn.model, held[0], held[1])
    with deps.fitting:
        return _fitted(as_of, deps=deps)


def _fitted(as_of: date, *, deps: Deps) -> ClvModel:
    """Both models as of a date, fitting what is not kept (under ``deps.fitting``)."""
    read: dict[str, dict[str, Spending]] = {}

    def summaries() -> dict[str, Spending]:
        # One read of every customer's summary serves both fits (its days are BG/NBD's purchase days), summed per
        # record by the database.
        if "rows" not in read:
            read["rows"] = deps.store.purchase_summaries(until=as_of)
        return read["rows"]

    # Checks as_of; NotFound when there is too little to fit.
    churn, _ = model_as_of(as_of, deps=deps, summaries=lambda: {c: s.history for c, s in summaries().items()})
    held = deps.store.spend_model(as_of)
    if held is None:
        failed = _NO_CONVERGENCE + as_of.isoformat()
        if deps.store.get_mark(failed) is not None:
            # Kept like a fit: the same history up to that date would fail again, after seconds of trying.
            raise Unavailable("model_did_not_converge", "the spend model did not converge on this purchase history")
        try:
            fitted = fit_converging(summaries(), as_of)
        except NotEnoughData as exc:
            raise NotFound("not_enough_data", str(exc)) from None
        except NoConvergence as exc:
            with deps.store.transaction():
                deps.store.put_mark(failed, iso_utc(deps.clock()))
            raise Unavailable("model_did_not_converge", str(exc)) from None
        with deps.store.transaction():
            deps.store.put_spend_model(fitted, fitted_at=iso_utc(deps.clock()))
        held = deps.store.spend_model(as_of)
        assert held is not None
    return ClvModel(churn, held[0], held[1])


def customer_value(customer_id: str, *, as_of: date, deps: Deps,
                   settings: ClvSettings) -> tuple[str, Spending, Value, ClvModel]:
    """A customer's (any of its ids) summary and value as of a date: the customer it is now, the summary, the
    value over the configured horizon, the models; NotFound without a purchase by then."""
    models = clv_model_as_of(as_of, deps=deps)
    survivor = deps.store.customer_of(customer_id)
    held = deps.store.purchase_spend(until=as_of, customer_id=survivor).get(survivor, {})
    s = spending(held, as_of)
    if s is None:
        raise NotFound("customer_not_found", "no purchases of that customer by that date")
    return survivor, s, value(models.bgnbd, models.gamma_gamma, s, months=settings.horizon_months,
                              monthly_rate=settings.monthly_discount_rate, margin=settings.margin), models
