"""The customer-value report (issue 15, part 4): ``GET /v1/reports/customer-value``, JSON or CSV.

No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations at definition.
"""

import csv
import io
from datetime import date
from fractions import Fraction

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from services.alerts.handlers import Deps
from services.alerts.reports.value import SEGMENTS, STAGES, Standing, ValueReport, report_of
from shared.access.visibility import Seeing, Visibility
from shared.clock import Day
from shared.contract.facts import from_minor
from shared.http.api import Caller, caller_dep, errors
from shared.http.bounds import MAX_ID, Offset
from shared.http.errors import Forbidden


class PyramidLevelRead(BaseModel):
    """One level of the customer pyramid."""

    level: str = Field(description="top (first 1% of customers by net spend), big (next 4%), medium (next 15%), "
                                   "small (the rest)")
    customers: int
    customer_share: float = Field(description="customers / customers of the period, rounded to 4 places")
    revenue: str = Field(description="net spend of the level's customers in the period, 2 places")
    revenue_share: float | None = Field(description="revenue / the period's net revenue, 4 places; null when "
                                                    "that is not positive")


class SegmentCount(BaseModel):
    """How many customers an RFM segment holds, and its rule."""

    segment: str
    rule: str
    customers: int


class StageCount(BaseModel):
    """How many customers a lifecycle stage holds."""

    stage: str
    label: str
    customers: int


class CustomerValueItem(BaseModel):
    """One customer's value as of the day: net spend of the period, RFM, pyramid level, lifecycle stage."""

    customer_id: str
    net_spend: str
    recency: int | None = Field(description="R score 1-5 (null: no purchase in the period)")
    frequency: int | None
    monetary: int | None
    rfm_segment: str | None
    pyramid_level: str | None
    lifecycle_stage: str


class CustomerValueRead(BaseModel):
    """The customer-value report over the customers the caller sees (or one store's)."""

    as_of: date
    months: int
    period_from: date
    period_to: date
    store_id: str | None
    customers: int = Field(description="customers with a purchase day in the period (ranked in the pyramid)")
    revenue: str = Field(description="their net spend in the period")
    pyramid: list[PyramidLevelRead]
    rfm_segments: list[SegmentCount]
    lifecycle_stages: list[StageCount]
    items: list[CustomerValueItem] = Field(description="pyramid order, then customers without a purchase in the "
                                                       "period by id")
    total: int
    offset: int
    limit: int


CSV_COLUMNS = ("customer_id", "net_spend", "pyramid_level", "recency", "frequency", "monetary", "rfm_segment",
               "lifecycle_stage")


def _rate(x: Fraction | None) -> float | None:
    return None if x is None else float(round(x, 4))


def _item(s: Standing) -> CustomerValueItem:
    r = s.rfm
    return CustomerValueItem(customer_id=s.customer_id, net_spend=str(from_minor(s.net_minor)),
                             recency=r.r if r else None, frequency=r.f if r else None, monetary=r.m if r else None,
                             rfm_segment=r.segment if r else None, pyramid_level=s.level, lifecycle_stage=s.stage)


def customer_value(*, as_of: date, months: int, store_id: str | None, seeing: Visibility, deps: Deps) -> ValueReport:
    """The report over the customers a caller sees (owned by ``store_id`` if given: 403 outside its scope)."""
    if store_id is not None and not seeing.company_wide and not seeing.sees(store_id):
        raise Forbidden("forbidden_scope", "that store is outside the key's scope")
    if store_id is not None:
        return report_of(deps.store, as_of=as_of, months=months, scope=("store", store_id),
                         keep=lambda s: s is not None and s == store_id)
    if not seeing.company_wide:
        return report_of(deps.store, as_of=as_of, months=months, scope=("seeing", seeing.scope, seeing.stores),
                         keep=lambda s: s is not None and seeing.sees(s))
    return report_of(deps.store, as_of=as_of, months=months)


def reports_value_router(deps: Deps) -> APIRouter:
    """The customer-value report route over ``deps``."""
    r = APIRouter(prefix="/reports")

    @r.get("/customer-value", response_model=CustomerValueRead, tags=["reports"], responses={
        **errors(403), 200: {"content": {"text/csv": {"schema": {"type": "string"}}}}})
    def get_customer_value(request: Request, seeing: Seeing, caller: Caller = caller_dep("reader"),
                           as_of: Day | None = Query(None, description="YYYY-MM-DD; today if absent"),
                           months: int = Query(12, ge=1, le=120, description="the period: months ending on as_of"),
                           store_id: str | None = Query(None, max_length=MAX_ID,
                                                        description="only customers this store owns"),
                           format: str | None = Query(None, pattern="^(json|csv)$"),
                           offset: Offset = 0, limit: int = Query(100, ge=1, le=1000)):
        """Customer pyramid, RFM quintiles and segments, lifecycle stages, per customer and counted."""
        day = as_of or deps.clock().astimezone(deps.zone).date()
        report = customer_value(as_of=day, months=months, store_id=store_id, seeing=seeing, deps=deps)
        if format == "csv" or (format is None and "text/csv" in request.headers.get("accept", "")):
            return _csv(report, f"customer-value-{day.isoformat()}.csv")
        return CustomerValueRead(
            as_of=day, months=months, period_from=report.start, period_to=day, store_id=store_id,
            customers=report.customers, revenue=str(from_minor(report.revenue_minor)),
            pyramid=[PyramidLevelRead(level=x.level, customers=x.customers, customer_share=_rate(x.customer_share),
                                      revenue=str(from_minor(x.revenue_minor)), revenue_share=_rate(x.revenue_share))
                     for x in report.levels],
            rfm_segments=[SegmentCount(segment=n, rule=rule, customers=report.segments[n]) for n, rule, _ in SEGMENTS],
            lifecycle_stages=[StageCount(stage=n, label=label, customers=report.stages[n]) for n, label in STAGES],
            items=[_item(s) for s in report.standings(offset, limit)], total=len(report.rows),
            offset=offset, limit=limit)

    return r


def _money(minor: int) -> str:
    """Fen as a 2-place decimal string, exactly (``from_minor`` without a Decimal per row)."""
    q, r = divmod(abs(minor), 100)
    return f"{'-' if minor < 0 else ''}{q}.{r:02d}"


def _csv(report: ValueReport, filename: str) -> Response:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    # Straight from the report's maps (no standing or response model per row: a row per customer).
    scores, level_of, stage_of, blank = report.scores, report.level_of, report.stage_of, ("",) * 4
    w.writerows((c, _money(t.net_minor), level_of.get(c, ""), *(scores[c] if c in scores else blank), stage_of[c])
                for t in report.rows for c in (t.customer_id,))
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
