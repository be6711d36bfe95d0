"""The alert inbox (the person's stores or region: filters, paging, SLA badges) and the acknowledge and
resolve actions, which the customer page reuses."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import Response

from services.console.i18n import N_, _
from services.console.web import ClientsDep, SessionDep, render

router = APIRouter()
PAGE = 25
STATUSES = {"open": N_("Open"), "acknowledged": N_("Acknowledged"), "resolved": N_("Resolved")}
SEVERITIES = {"red": N_("Red"), "yellow": N_("Yellow"), "info": N_("Info")}
TYPES = {"complaint": N_("Complaint"), "survey_low": N_("Low survey score"), "churn_yellow": N_("Churn risk"),
         "churn_red": N_("Churn risk, high"), "churn_model": N_("Churn model"), "birthday": N_("Birthday"),
         "points_expiring": N_("Points expiring"), "tier_upgrade": N_("Tier upgrade"),
         "first_purchase": N_("First purchase"), "large_balance": N_("Large points balance"),
         "contact_due": N_("Contact due"), "visit_due": N_("Visit due")}
# Resolve reasons the API takes for churn and complaint alerts (issue 15).
REASONS = {"product_or_service_defect": N_("Product or service defect"), "price_competition": N_("Price competition"),
           "no_clear_difference": N_("No clear difference"), "novelty_or_habit": N_("Novelty or habit"),
           "other": N_("Other")}
REASONED = ("complaint", "churn_yellow", "churn_red", "churn_model")


def alert_context(page: dict) -> dict:
    """What the alert rows need, for any page that lists alerts."""
    return {"alerts": page, "types": TYPES, "statuses": STATUSES, "severities": SEVERITIES, "reasons": REASONS,
            "reasoned": REASONED}


@router.get("/alerts")
async def inbox(request: Request, session: SessionDep, clients: ClientsDep,
                status: str | None = Query(None), severity: str | None = Query(None),
                type: str | None = Query(None), store_id: str | None = Query(None, max_length=64),
                sla_breached: str | None = Query(None), offset: int = Query(0, ge=0)) -> Response:
    """The alerts of the person's stores, newest first, filtered and paged."""
    filters = {"status": status if status in STATUSES else None,
               "severity": severity if severity in SEVERITIES else None,
               "type": type if type in TYPES else None, "store_id": store_id or None,
               "sla_breached": sla_breached if sla_breached in ("true", "false") else None}
    page = await clients.get("alerts", "/v1/alerts", token=session.token, offset=offset, limit=PAGE, **filters)
    template = "alerts/_list.html" if request.headers.get("HX-Request") == "true" else "alerts/inbox.html"
    query = urlencode({k: v for k, v in filters.items() if v})  # the pager's links keep the filters
    return render(request, template, filters=filters, query=query, **alert_context(page))


@router.post("/alerts/{alert_id}/ack")
async def acknowledge(request: Request, alert_id: str, session: SessionDep, clients: ClientsDep,
                      note: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """Acknowledge an alert; answers with its row, now acknowledged."""
    alert = await clients.post("alerts", f"/v1/alerts/{alert_id}/ack", token=session.token,
                               body={"note": note.strip() or None})
    # The row (and the button that had focus) is replaced: say what happened, and the row takes focus.
    return render(request, "alerts/_row.html", a=alert, announce=_("Alert acknowledged."), **alert_context({}))


@router.post("/alerts/{alert_id}/resolve")
async def resolve(request: Request, alert_id: str, session: SessionDep, clients: ClientsDep,
                  note: Annotated[str, Form(max_length=2000)] = "", reason: Annotated[str, Form()] = "",
                  reason_text: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """Resolve an alert with what was done (and, for churn and complaints, why); answers with its row."""
    body = {"note": note.strip(), "reason": reason or None, "reason_text": reason_text.strip() or None}
    alert = await clients.post("alerts", f"/v1/alerts/{alert_id}/resolve", token=session.token, body=body)
    return render(request, "alerts/_row.html", a=alert, announce=_("Alert resolved."), **alert_context({}))
