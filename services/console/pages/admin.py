"""The admin pages (the nav shows them to admins; the services answer 403 to anyone else, which is the console's
forbidden page): an overview, identity conflicts with merge and dismiss, dead letters with inspect and re-drive,
and the audit log. Imports, webhooks and privacy requests are in ``admin_ops``."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import Response

from services.console.clients import SERVICES, ApiError
from services.console.i18n import N_, _
from services.console.web import ClientsDep, SessionDep, is_htmx, render, zone_of

router = APIRouter()
PAGE = 25
SECTIONS = [("/admin", N_("Overview")), ("/admin/conflicts", N_("Identity conflicts")),
            ("/admin/deadletters", N_("Dead letters")), ("/admin/imports", N_("Imports")),
            ("/admin/webhooks", N_("Webhooks")), ("/admin/audit", N_("Audit log")),
            ("/admin/privacy", N_("Erasure and export"))]
CONFLICT_STATUSES = {"open": N_("Open"), "resolved": N_("Merged"), "dismissed": N_("Dismissed")}
LETTER_STATUSES = {"dead": N_("Dead"), "redriven": N_("Redriven")}


def admin_render(request: Request, template: str, status_code: int = 200, **context) -> Response:
    """An admin page with the admin sections' menu."""
    return render(request, template, status_code, sections=SECTIONS, **context)


@router.get("/admin")
async def overview(request: Request, session: SessionDep, clients: ClientsDep) -> Response:
    """What needs an admin: open conflicts, dead letters per service, the latest audited acts."""
    # The audit log first: only a company-wide admin may read it, so anyone else gets the forbidden page.
    audit = await clients.get("identity", "/v1/audit", token=session.token, limit=10)
    conflicts, *letters = await asyncio.gather(
        clients.get("identity", "/v1/identity/conflicts", token=session.token, status="open", limit=101),
        *(clients.optional(s, "/v1/deadletters", token=session.token, status="dead", limit=1) for s in SERVICES))
    dead = {s: (page or {}).get("total") for s, page in zip(SERVICES, letters, strict=True)}
    return admin_render(request, "admin/overview.html", audit=audit, open_conflicts=len(conflicts["items"]),
                        dead=dead)


# -- identity conflicts -----------------------------------------------------------------------------------


@router.get("/admin/conflicts")
async def conflicts(request: Request, session: SessionDep, clients: ClientsDep,
                    status: str = Query("open"), customer_id: str | None = Query(None, max_length=64),
                    offset: int = Query(0, ge=0)) -> Response:
    """Events that would have joined two customers, for review (open first), paged and filtered."""
    status = status if status in CONFLICT_STATUSES else "open"
    page = await clients.get("identity", "/v1/identity/conflicts", token=session.token, status=status,
                             customer_id=customer_id or None, offset=offset, limit=PAGE + 1)
    items = page["items"]
    query = urlencode({k: v for k, v in {"status": status, "customer_id": customer_id}.items() if v})
    template = "admin/_conflicts.html" if is_htmx(request) else "admin/conflicts.html"
    return admin_render(request, template, conflicts=items[:PAGE], more=len(items) > PAGE, offset=offset,
                        page_size=PAGE, query=query, status=status, customer_id=customer_id or "",
                        statuses=CONFLICT_STATUSES)


def _closed(request: Request, conflict_id: str, *, status: str, by: str, ids: list[str], note: str) -> Response:
    row = {"conflict_id": conflict_id, "status": status, "resolved_by": by, "customer_ids": ids, "note": note}
    return render(request, "admin/_conflict_row.html", k=row, statuses=CONFLICT_STATUSES)


@router.post("/admin/conflicts/{conflict_id}/merge")
async def merge(request: Request, conflict_id: str, session: SessionDep, clients: ClientsDep,
                survivor: Annotated[str, Form(max_length=64)], pair: Annotated[str, Form(max_length=300)],
                reason: Annotated[str, Form(max_length=500)] = "") -> Response:
    """Merge the conflict's two customers (the survivor keeps its id); the conflict closes as resolved."""
    others = [c for c in pair.split() if c != survivor]
    if survivor not in pair.split() or len(others) != 1:
        raise ApiError(422, "choose_survivor", "choose one of the two customers to keep")
    other = others[0]
    if not reason.strip():
        return render(request, "errors/_flash.html", 422, message=_("Say why they are one person."),
                      headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"})
    await clients.post("identity", f"/v1/customers/{survivor}/merge", token=session.token,
                       body={"customer_id": other, "conflict_id": conflict_id, "reason": reason.strip()})
    return _closed(request, conflict_id, status="resolved", by=session.user, ids=[survivor, other],
                   note=reason.strip())


@router.post("/admin/conflicts/{conflict_id}/dismiss")
async def dismiss(request: Request, conflict_id: str, session: SessionDep, clients: ClientsDep,
                  ids: Annotated[str, Form(max_length=300)] = "",
                  note: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """Close the conflict as two different people."""
    await clients.post("identity", f"/v1/identity/conflicts/{conflict_id}", token=session.token,
                       body={"status": "dismissed", "note": note.strip() or None})
    return _closed(request, conflict_id, status="dismissed", by=session.user, ids=ids.split(), note=note.strip())


# -- dead letters -----------------------------------------------------------------------------------------


@router.get("/admin/deadletters")
async def dead_letters(request: Request, session: SessionDep, clients: ClientsDep,
                       service: str = Query("identity"), status: str | None = Query("dead"),
                       offset: int = Query(0, ge=0)) -> Response:
    """One service's dead letters (reason, origin), paged; inspect reveals a payload (audited)."""
    service = service if service in SERVICES else "identity"
    status = status if status in LETTER_STATUSES else None
    page = await clients.get(service, "/v1/deadletters", token=session.token, status=status, offset=offset,
                             limit=PAGE)
    query = urlencode({"service": service, "status": status or ""})
    template = "admin/_deadletters.html" if is_htmx(request) else "admin/deadletters.html"
    return admin_render(request, template, letters=page, service=service, status=status or "", query=query,
                        services=SERVICES, statuses=LETTER_STATUSES)


@router.get("/admin/deadletters/{service}/{letter_id}")
async def inspect(request: Request, service: str, letter_id: int, session: SessionDep, clients: ClientsDep,
                  position: int = Query(..., ge=0), status: str | None = Query(None)) -> Response:
    """One dead letter's raw payload (an admin's reveal, recorded in the audit log)."""
    if service not in SERVICES:
        raise ApiError(404, "not_found", "no such service")
    page = await clients.get(service, "/v1/deadletters", token=session.token, status=status or None,
                             offset=position, limit=1, reveal="true", reason="console: inspect a dead letter")
    letter = next((d for d in page["items"] if d["id"] == letter_id), None)
    if letter is None:
        raise ApiError(404, "dead_letter_not_found", "no such dead letter")
    return render(request, "admin/_letter_payload.html", d=letter)


@router.post("/admin/deadletters/{service}/{letter_id}/redrive")
async def redrive(request: Request, service: str, letter_id: int, session: SessionDep,
                  clients: ClientsDep) -> Response:
    """Send a dead letter back to its topic (after its cause is fixed)."""
    if service not in SERVICES:
        raise ApiError(404, "not_found", "no such service")
    done = await clients.post(service, f"/v1/deadletters/{letter_id}/redrive", token=session.token)
    return render(request, "admin/_redriven.html", done=done, service=service)  # the button goes with it


# -- audit log --------------------------------------------------------------------------------------------


def _moment(day: str, request: Request, *, end: bool) -> str | None:
    # A day typed in the form is a day in the platform's zone; ``until`` is exclusive, so the next midnight.
    if not day:
        return None
    try:
        d = date.fromisoformat(day)
    except ValueError:
        return None
    moment = datetime.combine(d, time(), tzinfo=zone_of(request))
    if end:
        moment = datetime.combine(d.fromordinal(d.toordinal() + 1), time(), tzinfo=zone_of(request))
    return moment.isoformat()


@router.get("/admin/audit")
async def audit(request: Request, session: SessionDep, clients: ClientsDep,
                actor: str = Query("", max_length=64), customer_id: str = Query("", max_length=64),
                action: str = Query("", max_length=64), since: str = Query("", max_length=10),
                until: str = Query("", max_length=10), cursor: str | None = Query(None, max_length=512)
                ) -> Response:
    """The audit log of every service, newest first, filtered by person, customer, action and days."""
    filters = {"actor": actor.strip(), "customer_id": customer_id.strip(), "action": action.strip(),
               "since": since, "until": until}
    page = await clients.get("identity", "/v1/audit", token=session.token, actor=filters["actor"] or None,
                             customer_id=filters["customer_id"] or None, action=filters["action"] or None,
                             since=_moment(since, request, end=False), until=_moment(until, request, end=True),
                             cursor=cursor, limit=PAGE)
    query = urlencode({k: v for k, v in filters.items() if v})
    template = "admin/_audit.html" if is_htmx(request) else "admin/audit.html"
    return admin_render(request, template, audit=page, filters=filters, query=query, cursor=cursor)
