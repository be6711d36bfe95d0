"""Issue 15, clv: the customer-value model report and one customer's value (``reports_clv_router``).

No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations, and ``DepsDep`` is
local to the router function, where only an annotation evaluated at definition finds it.
"""

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from services.alerts.config import ClvSettings
from services.alerts.handlers import Deps, commands
from services.alerts.reports import clv
from services.alerts.reports.value import standing_of
from shared.access.visibility import Seeing
from shared.clock import Day
from shared.clv import exact_money
from shared.http.api import Caller, caller_dep
from shared.http.docs import errors

_PLACES = 4  # probabilities and expected counts in JSON


class BgNbdRead(BaseModel):
    r: float
    alpha: float
    a: float
    b: float


class GammaGammaRead(BaseModel):
    p: float
    q: float
    gamma: float = Field(description="scale of spend per purchase day, in major units (yuan)")


class ClvModelRead(BaseModel):
    as_of: date
    bgnbd: BgNbdRead
    gamma_gamma: GammaGammaRead
    customers: int = Field(description="customers with a purchase by as_of (BG/NBD is fitted on them)")
    repeat_customers: int = Field(description="customers with a repeat purchase day and positive spend on "
                                              "their repeat days (Gamma-Gamma is fitted on them)")
    fitted_at: str
    horizon_months: int
    monthly_discount_rate: float
    margin: float


class CustomerValueRead(BaseModel):
    customer_id: str
    as_of: date
    horizon_months: int
    monthly_discount_rate: float
    margin: float
    frequency: int = Field(description="repeat purchase days (x)")
    average_spend: str | None = Field(description="spend per repeat purchase day (m), null without one")
    p_alive: float = Field(description="probability the customer is still active, 4 places")
    expected_purchases: float = Field(description="purchase days expected over the horizon, 4 places")
    expected_average_order_value: str = Field(description="expected spend per purchase day (Gamma-Gamma)")
    expected_spend: str = Field(description="expected purchases x expected average order value, undiscounted")
    clv: str = Field(description="margin x expected spend month by month, discounted at the monthly rate")
    rfm_segment: str | None = Field(None, description="RFM segment among every customer of the 12 months ending "
                                                      "on as_of (the customer-value report's rules); null "
                                                      "without a purchase in them")
    pyramid_level: str | None = Field(None, description="top, big, medium or small among the same customers; "
                                                        "null without a purchase in the 12 months")
    lifecycle_stage: str | None = Field(None, description="exploration, formation, stability or decline over all "
                                                          "purchase days up to as_of")


def reports_clv_router(deps: Deps, settings: ClvSettings | None = None) -> APIRouter:
    """The CLV model report and the per-customer value route over ``deps``; settings read once here."""
    r = APIRouter()
    DepsDep = Annotated[Deps, Depends(lambda: deps)]
    cfg = settings or ClvSettings()

    @r.get("/reports/clv-model", response_model=ClvModelRead, tags=["reports"], responses=errors(403, 404))
    def get_clv_model(deps: DepsDep, seeing: Seeing, caller: Caller = caller_dep("reader"),
                      as_of: Day | None = Query(None, description="YYYY-MM-DD; today if absent")) -> ClvModelRead:
        """BG/NBD and Gamma-Gamma parameters fitted over every customer's purchases up to ``as_of`` (kept per
        date); company-wide keys, as the models are the whole customer base's."""
        seeing.company_only("the CLV model")
        m = clv.clv_model_as_of(as_of or _today(deps), deps=deps)
        b, g = m.bgnbd, m.gamma_gamma
        return ClvModelRead(as_of=b.as_of, bgnbd=BgNbdRead(r=b.r, alpha=b.alpha, a=b.a, b=b.b),
                            gamma_gamma=GammaGammaRead(p=g.p, q=g.q, gamma=g.gamma), customers=b.customers,
                            repeat_customers=g.repeat_customers, fitted_at=m.fitted_at,
                            horizon_months=cfg.horizon_months, monthly_discount_rate=cfg.monthly_discount_rate,
                            margin=cfg.margin)

    @r.get("/customers/{customer_id}/value", response_model=CustomerValueRead, tags=["reports"],
           responses=errors(404))
    def get_customer_value(deps: DepsDep, customer_id: str, seeing: Seeing, caller: Caller = caller_dep("reader"),
                           as_of: Day | None = Query(None, description="YYYY-MM-DD; today if absent"),
                           ) -> CustomerValueRead:
        """A customer's probability alive, expected purchases, average order value, spend and CLV over the
        configured horizon; a customer outside the caller's scope answers as an unknown one."""
        seeing.check(deps.store.customer_of(customer_id), lambda c: commands.owner_of(c, deps=deps))
        day = as_of or _today(deps)
        survivor, s, v, _ = clv.customer_value(customer_id, as_of=day, deps=deps, settings=cfg)
        standing = standing_of(deps.store, survivor, day)
        rfm = standing.rfm if standing else None
        average = s.average
        return CustomerValueRead(
            customer_id=survivor, as_of=day, horizon_months=cfg.horizon_months,
            monthly_discount_rate=cfg.monthly_discount_rate, margin=cfg.margin, frequency=s.history.frequency,
            average_spend=None if average is None else str(exact_money(average)),
            p_alive=round(v.p_alive, _PLACES), expected_purchases=round(v.expected_purchases, _PLACES),
            expected_average_order_value=str(v.expected_average_order_value), expected_spend=str(v.expected_spend),
            clv=str(v.clv), rfm_segment=rfm.segment if rfm else None,
            pyramid_level=standing.level if standing else None,
            lifecycle_stage=standing.stage if standing else None)

    return r


def _today(deps: Deps) -> date:
    return deps.clock().astimezone(deps.zone).date()
