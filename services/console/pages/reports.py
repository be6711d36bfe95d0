"""The reports: store KPIs (a store, a region or the company, with the month before and the year before as
charts), the attendance sheet (paged, with its CSV), customer value (pyramid, RFM, lifecycle), satisfaction
(NPS and CSAT over six months) and churn reasons. Every figure is the alerts API's, shown as it gave it."""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from services.console.clients import ApiError
from services.console.i18n import N_, _
from services.console.web import ClientsDep, SessionDep, is_htmx, render, zone_of

router = APIRouter()
PAGE = 50
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
SCOPES = {"store": N_("Store"), "region": N_("Region"), "company": N_("Company")}
# The figures shown in the KPI table (name, label, kind) and charted month on month and year on year.
FIGURES = [("sales", N_("Sales"), "money"), ("gross_sales", N_("Gross sales"), "money"),
           ("refunds", N_("Refunds"), "money"), ("orders", N_("Orders"), "count"),
           ("average_ticket", N_("Average ticket"), "money"), ("member_sales", N_("Member sales"), "money"),
           ("member_orders", N_("Member orders"), "count"),
           ("member_capture_rate", N_("Member capture rate"), "rate"),
           ("non_member_sales", N_("Non-member sales"), "money"), ("customers", N_("Customers"), "count"),
           ("new_customers", N_("New customers"), "count"),
           ("existing_customers", N_("Existing customers"), "count"),
           ("new_customer_retention", N_("New customer retention"), "rate"),
           ("existing_customer_retention", N_("Existing customer retention"), "rate"),
           ("repeat_purchase_rate", N_("Repeat purchase rate"), "rate"),
           ("purchase_frequency", N_("Purchase frequency"), "ratio"),
           ("managed_customers", N_("Managed customers"), "count")]
CHARTED = {"money": ["sales", "member_sales", "average_ticket"], "count": ["orders", "customers", "new_customers"]}
LEVELS = {"top": N_("Top (1%%)"), "big": N_("Big (next 4%%)"), "medium": N_("Medium (next 15%%)"),
          "small": N_("Small (the rest)")}
SEGMENTS = {"champions": N_("Champions"), "loyal": N_("Loyal"), "promising": N_("Promising"),
            "at_risk": N_("At risk"), "hibernating": N_("Hibernating"), "need_attention": N_("Need attention")}
STAGES = {"exploration": N_("Exploration"), "formation": N_("Formation"), "stability": N_("Stability"),
          "decline": N_("Decline")}
REASONS = {"product_or_service_defect": N_("Product or service defect"), "price_competition": N_("Price competition"),
           "no_clear_difference": N_("No clear difference"), "novelty_or_habit": N_("Novelty or habit"),
           "other": N_("Other"), "unspecified": N_("Not given")}


def _month(request: Request, month: str | None, store_id: str | None = None) -> str:
    """The month asked for, else this month in the store's zone (a malformed one goes to the API, which says why)."""
    return month or f"{datetime.now(zone_of(request, store_id)):%Y-%m}"


def _page(request: Request, template: str, partial: str, **context) -> Response:
    return render(request, partial if is_htmx(request) else template, **context)


@router.get("/reports")
def index(request: Request, session: SessionDep) -> Response:
    """Which report answers which question."""
    return render(request, "reports/index.html")


@router.get("/reports/kpis")
async def kpis(request: Request, session: SessionDep, clients: ClientsDep, scope: str = Query("store"),
               store_id: str = Query("", max_length=64), region: str = Query("", max_length=64),
               month: str | None = Query(None, max_length=16)) -> Response:
    """A month's KPIs of a store, a region or the company, beside the month before and the year before."""
    scope = scope if scope in SCOPES else "store"
    month = _month(request, month, store_id or None)
    form = {"scope": scope, "store_id": store_id.strip(), "region": region.strip(), "month": month}
    path = {"store": f"/v1/reports/stores/{form['store_id']}", "region": f"/v1/reports/regions/{form['region']}",
            "company": "/v1/reports/company"}[scope]
    report = None
    if scope == "company" or form["store_id" if scope == "store" else "region"]:
        report = await clients.get("alerts", path, token=session.token, month=month)
    chart = None
    if report:
        labels = {n: label for n, label, _k in FIGURES}
        chart = {kind: {"figures": [_(labels[n]) for n in names],
                        "names": [_("This month"), _("Month before"), _("Same month last year")],
                        "series": [[_num(report[n]) for n in names],
                                   [_num(report["previous_month"][n]) for n in names],
                                   [_num(report["same_month_last_year"][n]) for n in names]]}
                 for kind, names in CHARTED.items()}
    return _page(request, "reports/kpis.html", "reports/_kpis.html", form=form, scopes=SCOPES, report=report,
                 figures=FIGURES, chart=chart, zone=zone_of(request, form["store_id"] or None))


def _num(value) -> float | None:
    return None if value is None else float(value)


@router.get("/reports/attendance")
async def attendance(request: Request, session: SessionDep, clients: ClientsDep,
                     store_id: str = Query("", max_length=64), month: str | None = Query(None, max_length=16),
                     offset: int = Query(0, ge=0)) -> Response:
    """A store's attendance sheet for a month, biggest spender first, a page at a time."""
    store_id = store_id.strip()
    month = _month(request, month, store_id or None)
    sheet = None
    if store_id:
        sheet = await clients.get("alerts", "/v1/reports/attendance", token=session.token, store_id=store_id,
                                  month=month)
    query = urlencode({"store_id": store_id, "month": month})
    return _page(request, "reports/attendance.html", "reports/_attendance.html", store_id=store_id, month=month,
                 sheet=sheet, offset=offset, page_size=PAGE, query=query,
                 lines=(sheet or {}).get("items", [])[offset:offset + PAGE])


@router.get("/reports/attendance.csv")
async def attendance_csv(session: SessionDep, clients: ClientsDep, store_id: str = Query(..., max_length=64),
                         month: str = Query(..., max_length=16)) -> Response:
    """The sheet as the API's CSV, downloaded through the console (the browser holds no API token)."""
    r = await clients.http["alerts"].get("/v1/reports/attendance", params={"store_id": store_id, "month": month,
                                                                          "format": "csv"},
                                         headers={"Authorization": f"Bearer {session.token}"})
    if not r.is_success:
        error = (r.json().get("error") or {}) if r.headers.get("content-type", "").startswith("application/json") \
            else {}
        raise ApiError(r.status_code, error.get("code", "error"), error.get("message", r.reason_phrase))
    name = f"attendance-{re.sub(r'[^A-Za-z0-9_-]', '_', store_id)}-{re.sub(r'[^0-9-]', '', month)}.csv"
    return Response(r.content, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/reports/value")
async def value(request: Request, session: SessionDep, clients: ClientsDep,
                store_id: str = Query("", max_length=64), as_of: str | None = Query(None, max_length=16),
                months: int = Query(12, ge=1, le=120), offset: int = Query(0, ge=0)) -> Response:
    """The customer pyramid, RFM segments and lifecycle stages, with the customers a page at a time."""
    store_id = store_id.strip()
    as_of = as_of if as_of and _DAY.fullmatch(as_of) else f"{datetime.now(zone_of(request, store_id or None)):%Y-%m-%d}"
    report = await clients.get("alerts", "/v1/reports/customer-value", token=session.token, as_of=as_of,
                               months=months, store_id=store_id or None, offset=offset, limit=PAGE)
    query = urlencode({"store_id": store_id, "as_of": as_of, "months": months})
    return _page(request, "reports/value.html", "reports/_value.html", store_id=store_id, as_of=as_of,
                 months=months, report=report, levels=LEVELS, segments=SEGMENTS, stages=STAGES, query=query,
                 offset=offset, page_size=PAGE)


@router.get("/reports/satisfaction")
async def satisfaction(request: Request, session: SessionDep, clients: ClientsDep,
                       store_id: str = Query("", max_length=64), region: str = Query("", max_length=64),
                       month: str | None = Query(None, max_length=16)) -> Response:
    """NPS and CSAT of the month and the six months ending with it, and the share of loyal customers."""
    store_id, region = store_id.strip(), region.strip()
    month = _month(request, month, store_id or None)
    report = await clients.get("alerts", "/v1/reports/satisfaction", token=session.token, month=month,
                               store_id=store_id or None, region=region or None)
    trend = {"months": [m["month"] for m in report["trend"]], "nps": [m["nps"] for m in report["trend"]],
             "csat": [None if m["csat"] is None else round(m["csat"] * 100, 2) for m in report["trend"]],
             "names": ["NPS", "CSAT"]}
    return _page(request, "reports/satisfaction.html", "reports/_satisfaction.html", store_id=store_id,
                 region=region, month=month, report=report, trend=trend)


@router.get("/reports/churn-reasons")
async def churn_reasons(request: Request, session: SessionDep, clients: ClientsDep,
                        store_id: str = Query("", max_length=64), region: str = Query("", max_length=64),
                        month: str | None = Query(None, max_length=16)) -> Response:
    """Why customers were lost: the reasons churn and complaint alerts were resolved with, per store."""
    store_id, region = store_id.strip(), region.strip()
    month = _month(request, month, store_id or None)
    report = await clients.get("alerts", "/v1/reports/churn-reasons", token=session.token, month=month,
                               store_id=store_id or None, region=region or None)
    return _page(request, "reports/churn.html", "reports/_churn.html", store_id=store_id, region=region,
                 month=month, report=report, reasons=REASONS)
