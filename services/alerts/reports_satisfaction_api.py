"""Issue 15, satisfaction reports: NPS, CSAT, responses and their trend with the loyal share beside them, and
the reasons churn and complaint alerts were resolved for, per store, region or the whole company.

No ``from __future__ import annotations``: FastAPI reads the routes' annotations.
"""

import csv
import io
from typing import Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from services.alerts.handlers import Deps
from services.alerts.reports import attachment
from services.alerts.reports import satisfaction as sat
from shared.access.visibility import Seeing, Visibility
from shared.http.api import Caller, caller_dep, errors
from shared.http.bounds import MAX_ID
from shared.http.errors import Forbidden, InvalidInput

CSV = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV"}}


class MonthScores(BaseModel):
    """One month's survey figures."""

    month: str
    responses: int
    promoters: int = Field(description="scores 9-10")
    passives: int = Field(description="scores 7-8")
    detractors: int = Field(description="scores 0-6")
    nps: float | None = Field(description="100 × (promoters − detractors) / responses, points, 2 places")
    csat: float | None = Field(description="responses scoring 7-10 / responses, 4 places")


class SatisfactionRead(BaseModel):
    """A store's (or region's, or the company's) satisfaction in a month, its trend and the loyal share."""

    store_id: str | None
    region: str | None
    month: str
    responses: int
    promoters: int
    passives: int
    detractors: int
    nps: float | None
    csat: float | None
    trend: list[MonthScores] = Field(description=f"the {sat.TREND_MONTHS} months ending with month, oldest first")
    customers: int = Field(description=f"customers who bought in the {sat.LOYAL_WINDOW_MONTHS} months ending with "
                                       "month")
    loyal_customers: int = Field(description=f"of them, those who bought on ≥ {sat.LOYAL_MIN_DAYS} distinct days")
    loyal_share: float | None = Field(description="loyal_customers / customers, 4 places")
    loyal_window_months: int


class ReasonCount(BaseModel):
    store_id: str | None
    reason: str = Field(description=f"one of {', '.join(sat.REASONS)}, or {sat.UNSPECIFIED}")
    alerts: int


class ChurnReasonsRead(BaseModel):
    """Churn and complaint alerts resolved in a month, per store and reason."""

    store_id: str | None
    region: str | None
    month: str
    total: int
    items: list[ReasonCount]


def _month(text: str) -> str:
    try:
        sat.parse_month(text)
    except ValueError:
        # The shape every report's month error has (README: ``details.parameter``).
        raise InvalidInput("invalid_month", "month must be YYYY-MM", details={"parameter": "month"}) from None
    return text


def _scope(seeing: Visibility, store_id: str | None, region: str | None) -> frozenset[str] | None:
    """The stores a report covers (None: all, surveys naming no store included); 403 beyond the caller's scope."""
    if store_id is not None and region is not None:
        raise InvalidInput("store_or_region", "give store_id or region, not both",
                           details=[{"loc": "query.region", "msg": "give store_id or region, not both"}])
    if store_id is not None:
        if not seeing.company_wide and not seeing.sees(store_id):
            raise Forbidden("forbidden_scope", "that store is outside the key's scope")
        return frozenset({store_id})
    if region is not None:
        scope = seeing.scope
        if scope.kind == "store" or (scope.kind == "region" and scope.value != region):
            raise Forbidden("forbidden_scope", "that region is outside the key's scope")
        return frozenset(s for s in seeing.known if seeing.region_of(s) == region)
    return seeing.stores  # a store key: its store; a region key: its region's; a company key: everything


def _label(seeing: Visibility, store_id: str | None, region: str | None) -> tuple[str | None, str | None]:
    scope = seeing.scope
    if store_id is None and region is None and scope.kind == "store":
        return scope.value, None
    if store_id is None and region is None and scope.kind == "region":
        return None, scope.value
    return store_id, region


def _wants_csv(request: Request, format: str | None) -> bool:
    return format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))


def _csv(rows: list[list], *name: str) -> Response:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=attachment(*name))


def satisfaction_report(deps: Deps, *, month: str, stores: frozenset[str] | None, store_id: str | None,
                        region: str | None) -> SatisfactionRead:
    """The satisfaction of ``stores`` in ``month`` from the per store-month aggregates."""
    store = deps.store
    trend_months = sat.months_back(month, sat.TREND_MONTHS)
    counts = store.survey_counts(months=trend_months, stores=stores)
    trend = []
    for m in trend_months:
        s = sat.scores(counts[m])
        trend.append(MonthScores(month=m, responses=s.responses, promoters=s.promoters, passives=s.passives,
                                 detractors=s.detractors, nps=s.nps, csat=s.csat))
    customers, loyal_customers = store.repeat_buyers(months=sat.months_back(month, sat.LOYAL_WINDOW_MONTHS),
                                                     stores=stores)
    loyal = sat.Loyalty(customers, loyal_customers)
    now = trend[-1]
    return SatisfactionRead(store_id=store_id, region=region, month=month, responses=now.responses,
                            promoters=now.promoters, passives=now.passives, detractors=now.detractors, nps=now.nps,
                            csat=now.csat, trend=trend, customers=loyal.customers, loyal_customers=loyal.loyal,
                            loyal_share=loyal.share, loyal_window_months=sat.LOYAL_WINDOW_MONTHS)


def reports_satisfaction_router(deps: Deps) -> APIRouter:
    """The satisfaction and churn-reason report routes over ``deps``."""
    r = APIRouter(prefix="/reports", tags=["reports"])

    @r.get("/satisfaction", response_model=SatisfactionRead, responses={**CSV, **errors(403)})
    def get_satisfaction(request: Request, seeing: Seeing, caller: Caller = caller_dep("reader"),
                         month: str = Query(description="YYYY-MM"),
                         store_id: str | None = Query(None, max_length=MAX_ID),
                         region: str | None = Query(None, max_length=MAX_ID),
                         format: Literal["json", "csv"] | None = None) -> SatisfactionRead | Response:
        """NPS, CSAT and responses of a store (or a region, or the company) in a month with the 6 months'
        trend, and the share of loyal customers beside them (``Accept: text/csv`` or ``format=csv``: CSV)."""
        month = _month(month)
        stores = _scope(seeing, store_id, region)
        store_id, region = _label(seeing, store_id, region)
        report = satisfaction_report(deps, month=month, stores=stores, store_id=store_id, region=region)
        if not _wants_csv(request, format):
            return report
        rows: list[list] = [["month", "responses", "promoters", "passives", "detractors", "nps", "csat"]]
        rows += [[t.month, t.responses, t.promoters, t.passives, t.detractors, _cell(t.nps), _cell(t.csat)]
                 for t in report.trend]
        return _csv(rows, "satisfaction", store_id or region or "company", month)

    @r.get("/churn-reasons", response_model=ChurnReasonsRead, responses={**CSV, **errors(403)})
    def get_churn_reasons(request: Request, seeing: Seeing, caller: Caller = caller_dep("reader"),
                          month: str = Query(description="YYYY-MM"),
                          store_id: str | None = Query(None, max_length=MAX_ID),
                          region: str | None = Query(None, max_length=MAX_ID),
                          format: Literal["json", "csv"] | None = None) -> ChurnReasonsRead | Response:
        """Churn and complaint alerts resolved in a month per store and reason (``unspecified``: none given)."""
        month = _month(month)
        stores = _scope(seeing, store_id, region)
        store_id, region = _label(seeing, store_id, region)
        counts = deps.store.reason_counts(month=month, stores=stores)
        items = sorted((ReasonCount(store_id=s, reason=reason or sat.UNSPECIFIED, alerts=n)
                        for (s, reason), n in counts.items()), key=lambda x: (x.store_id or "", x.reason))
        report = ChurnReasonsRead(store_id=store_id, region=region, month=month, total=sum(counts.values()),
                                  items=items)
        if not _wants_csv(request, format):
            return report
        rows: list[list] = [["store_id", "reason", "alerts"]]
        rows += [[x.store_id or "", x.reason, x.alerts] for x in items]
        return _csv(rows, "churn-reasons", store_id or region or "company", month)

    return r


def _cell(value: float | None) -> str:
    return "" if value is None else repr(value)


