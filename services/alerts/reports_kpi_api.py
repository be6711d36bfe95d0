"""Store KPI routes (issue 15): a store's, a region's or the company's month, with comparisons, JSON or CSV.

No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations.
"""

import csv
import io
import re
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel

from services.alerts.handlers import Deps
from services.alerts.reports import attachment
from services.alerts.reports.kpi import TENURE, Figures, ratio
from services.alerts.reports.kpi_read import KpiConfig, compared, kpis
from shared.access.visibility import Seeing, Visibility
from shared.http.api import Caller, caller_dep, errors
from shared.http.bounds import MAX_ID
from shared.http.errors import Forbidden, InvalidInput, NotFound

# ASCII digits, the whole value: ``\d`` takes any script's digits and ``$`` matches before a final newline, and
# "2026-11\n" answered an empty report under that month instead of a 422.
_MONTH = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")
_CENT, _RATE = Decimal("0.01"), Decimal("0.0001")
# Money in fen as a two-place decimal string; rates as numbers rounded half-even to 4 places.
MONEY = ("sales", "gross_sales", "refunds", "member_sales", "non_member_sales", "average_ticket",
         "member_average_ticket", "non_member_average_ticket")
RATES = ("member_capture_rate", "new_customer_retention", "existing_customer_retention", "repeat_purchase_rate",
         "purchase_frequency", "new_existing_ratio")
COUNTS = ("orders", "member_orders", "non_member_orders", "customers", "new_customers", "existing_customers",
          "managed_customers")
CSV = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV"}}


class KpiFigures(BaseModel):
    """One month's figures (see the README's report definitions)."""

    month: str
    sales: str
    gross_sales: str
    refunds: str
    orders: int
    average_ticket: str | None
    member_sales: str
    member_orders: int
    member_average_ticket: str | None
    non_member_sales: str
    non_member_orders: int
    non_member_average_ticket: str | None
    member_capture_rate: float | None
    customers: int
    new_customers: int
    existing_customers: int
    new_existing_ratio: float | None
    new_customer_retention: float | None
    existing_customer_retention: float | None
    repeat_purchase_rate: float | None
    purchase_frequency: float | None
    managed_customers: int
    tenure: dict[str, int]


class KpiReport(KpiFigures):
    """A month's KPIs of a store, a region or the company, with last month's and last year's and the change."""

    level: Literal["store", "region", "company"]
    store_id: str | None = None
    region: str | None = None
    retention_days: int
    previous_month: KpiFigures
    same_month_last_year: KpiFigures
    change: dict[str, dict[str, str | float | int | None]]


def _money(fen: Fraction | int | None) -> Decimal | None:
    if fen is None:
        return None
    return (Decimal(fen.numerator) / Decimal(fen.denominator) / 100 if isinstance(fen, Fraction)
            else Decimal(fen) / 100).quantize(_CENT, rounding=ROUND_HALF_EVEN)


def exact(f: Figures) -> dict[str, Fraction | int | None]:
    """Every figure exactly: money in fen (a Fraction for averages), rates as Fractions."""
    return {
        "sales": f.sales, "gross_sales": f.gross_sales, "refunds": f.refunds, "orders": f.orders,
        "average_ticket": ratio(f.sales, f.orders), "member_sales": f.member_sales, "member_orders": f.member_orders,
        "member_average_ticket": ratio(f.member_sales, f.member_orders), "non_member_sales": f.non_member_sales,
        "non_member_orders": f.non_member_orders,
        "non_member_average_ticket": ratio(f.non_member_sales, f.non_member_orders),
        "member_capture_rate": ratio(f.member_sales, f.sales) if f.sales > 0 else None,
        "customers": f.customers, "new_customers": f.new_customers, "existing_customers": f.existing_customers,
        "new_existing_ratio": ratio(f.new_customers, f.existing_customers),
        "new_customer_retention": ratio(f.returning_new, f.new_customers),
        "existing_customer_retention": ratio(f.retained_customers, f.previous_customers),
        "repeat_purchase_rate": ratio(f.repeat_customers, f.customers),
        "purchase_frequency": ratio(f.purchase_days, f.customers), "managed_customers": f.managed_customers,
    }


def _shown(name: str, value: Fraction | int | None) -> str | float | int | None:
    if value is None:
        return None
    if name in MONEY:
        return str(_money(value))
    if name in RATES:
        return float((Decimal(value.numerator) / Decimal(value.denominator)).quantize(_RATE, ROUND_HALF_EVEN))
    return int(value)


def figures_read(f: Figures) -> KpiFigures:
    """A month's figures as the API shows them."""
    return KpiFigures(month=f.month, tenure=f.tenure, **{k: _shown(k, v) for k, v in exact(f).items()})


def change(now: Figures, then: Figures) -> dict[str, str | float | int | None]:
    """Each figure's change from ``then`` to ``now`` (computed exactly, shown as the figure is)."""
    a, b = exact(now), exact(then)
    return {k: None if a[k] is None or b[k] is None else _shown(k, a[k] - b[k]) for k in a}  # type: ignore[operator]


def check_month(month: str) -> str:
    """``month`` if it is YYYY-MM, else a 422 naming the parameter."""
    if not _MONTH.fullmatch(month) or int(month[:4]) < 1900:  # the years events carry; no "-001-12" months
        raise InvalidInput("invalid_month", "month must be YYYY-MM, e.g. 2026-11", details={"parameter": "month"})
    return month


def report_csv(report: KpiReport) -> str:
    """The report as CSV: one row per figure, with last month's, last year's and the changes."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    p, y = report.previous_month, report.same_month_last_year
    w.writerow(["figure", report.month, p.month, y.month, "change_previous_month", "change_same_month_last_year"])
    for name in exact(Figures("")):
        w.writerow(_cells(name, getattr(report, name), getattr(p, name), getattr(y, name),
                          report.change["previous_month"][name], report.change["same_month_last_year"][name]))
    for name, _, _ in TENURE:
        w.writerow([f"tenure_{name}", report.tenure[name], p.tenure[name], y.tenure[name],
                    report.tenure[name] - p.tenure[name], report.tenure[name] - y.tenure[name]])
    return out.getvalue()


def _cells(*values: object) -> list[object]:
    return ["" if v is None else v for v in values]  # an empty cell where the figure has no denominator


def reports_kpi_router(deps: Deps, config: KpiConfig | None = None) -> APIRouter:
    """The store KPI routes over ``deps``."""
    r = APIRouter(prefix="/reports", tags=["reports"])
    DepsDep = Annotated[Deps, Depends(lambda: deps)]
    days = (config or KpiConfig()).retention_days
    Month = Query(..., max_length=16, description="YYYY-MM")
    Format = Query(None, description="csv for CSV (or send Accept: text/csv)")

    def answer(request: Request, month: str, stores: list[str] | None, fmt: str | None,
               **where) -> KpiReport | Response:
        months = compared(check_month(month))
        got = kpis(list(months.values()), store=deps.store, stores=stores, retention_days=days)
        now, prev, last = (got[m] for m in months.values())
        report = KpiReport(**figures_read(now).model_dump(), **where, retention_days=days,
                           previous_month=figures_read(prev), same_month_last_year=figures_read(last),
                           change={"previous_month": change(now, prev), "same_month_last_year": change(now, last)})
        if fmt == "csv" or (fmt is None and "text/csv" in request.headers.get("accept", "")):
            return Response(report_csv(report), media_type="text/csv; charset=utf-8",
                            headers=attachment("kpi", where.get("store_id") or where.get("region") or "company", month))
        return report

    @r.get("/stores/{store_id}", response_model=KpiReport, responses={**CSV, **errors(403, 422)})
    def get_store(deps: DepsDep, request: Request, seeing: Seeing,
                  store_id: str = Path(max_length=MAX_ID), caller: Caller = caller_dep("reader"), month: str = Month,
                  format: Literal["json", "csv"] | None = Format):
        """A store's KPIs of a month (a store key its own store, a region key its region's)."""
        if seeing.stores is not None and store_id not in seeing.stores:
            raise Forbidden("forbidden_scope", "that store is outside the key's scope")
        return answer(request, month, [store_id], format, level="store", store_id=store_id)

    @r.get("/regions/{region}", response_model=KpiReport, responses={**CSV, **errors(403, 404, 422)})
    def get_region(deps: DepsDep, request: Request, seeing: Seeing, region: str = Path(max_length=MAX_ID),
                   caller: Caller = caller_dep("reader"), month: str = Month,
                   format: Literal["json", "csv"] | None = Format):
        """A region's KPIs of a month: its stores in the stores registry together (company or region keys)."""
        if not seeing.company_wide and not (seeing.scope.kind == "region" and seeing.scope.value == region):
            raise Forbidden("forbidden_scope", "that region is outside the key's scope")
        stores = _region_stores(seeing, region)
        return answer(request, month, stores, format, level="region", region=region)

    @r.get("/company", response_model=KpiReport, responses={**CSV, **errors(403, 422)})
    def get_company(deps: DepsDep, request: Request, seeing: Seeing, caller: Caller = caller_dep("reader"),
                    month: str = Month, format: Literal["json", "csv"] | None = Format):
        """The company's KPIs of a month: every store, sales naming no store included (company keys)."""
        seeing.company_only("the company report")
        return answer(request, month, None, format, level="company")

    return r


def _region_stores(seeing: Visibility, region: str) -> list[str]:
    stores = sorted(s for s in seeing.known if seeing.region_of(s) == region)
    if not stores:
        raise NotFound("region_not_found", "no store of the stores registry is in that region")
    return stores
