"""The admin pages for imports (started ones from the audit log, status, rejected rows, upload), webhooks (list,
create, deliveries, redeliver) and privacy requests (erasure with its progress, export as a file)."""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from markupsafe import escape
from starlette.responses import Response

from services.console.i18n import N_, _
from services.console.pages.admin import PAGE, admin_render
from services.console.web import ClientsDep, SessionDep, is_htmx, render
from shared.http.bounds import encode_cursor

router = APIRouter()
IMPORT_STATUSES = {"running": N_("Running"), "done": N_("Done"), "failed": N_("Failed")}
DELIVERY_STATUSES = {"pending": N_("Pending"), "delivered": N_("Delivered"), "dead": N_("Dead")}
FLASH = {"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"}


async def _started(clients, token: str, actions: tuple[str, ...], cursor: str | None) -> tuple[list[dict], str | None]:
    # Identity lists no imports or erasures by themselves: every one started is in the audit log, with its id.
    pages = await asyncio.gather(*(clients.get("identity", "/v1/audit", token=token, action=a, cursor=cursor,
                                               limit=PAGE) for a in actions))
    merged = sorted((e for p in pages for e in p["items"]), key=lambda e: (e["at"], e["audit_id"]), reverse=True)
    entries = merged[:PAGE]
    more = len(merged) > PAGE or any(p["next_cursor"] for p in pages)
    # The log's cursor is a keyset position (at, audit_id): the last one shown continues both streams at once.
    return entries, encode_cursor((entries[-1]["at"], entries[-1]["audit_id"])) if more and entries else None


# -- imports ----------------------------------------------------------------------------------------------


@router.get("/admin/imports")
async def imports(request: Request, session: SessionDep, clients: ClientsDep,
                  cursor: str | None = Query(None, max_length=512)) -> Response:
    """The imports started through the API, newest first, each with its status and counts."""
    entries, next_cursor = await _started(clients, session.token, ("import.members", "import.orders"), cursor)
    jobs = await asyncio.gather(*(clients.optional("identity", f"/v1/imports/{e['target']}", token=session.token,
                                                   limit=0) for e in entries))
    rows = [{"entry": e, "job": j} for e, j in zip(entries, jobs, strict=True)]
    return admin_render(request, "admin/imports.html", rows=rows, next_cursor=next_cursor, cursor=cursor,
                        statuses=IMPORT_STATUSES)


@router.get("/admin/imports/{import_id}")
async def import_page(request: Request, import_id: str, session: SessionDep, clients: ClientsDep,
                      offset: int = Query(0, ge=0)) -> Response:
    """One import: status, counts and progress per file, and its rejected rows (file, line, column, why)."""
    job = await clients.get("identity", f"/v1/imports/{import_id}", token=session.token, offset=offset,
                            limit=PAGE)
    template = "admin/_import_errors.html" if is_htmx(request) else "admin/import.html"
    return admin_render(request, template, job=job, offset=offset, page_size=PAGE, statuses=IMPORT_STATUSES)


@router.post("/admin/imports")
async def upload(request: Request, session: SessionDep, clients: ClientsDep,
                 kind: Annotated[str, Form(pattern="^(members|orders)$")],
                 file: Annotated[UploadFile, File()], points: Annotated[UploadFile | None, File()] = None) -> Response:
    """Start an import from an uploaded file (members, optionally with points lots; or orders)."""
    files = {kind: (file.filename or kind, await file.read(), file.content_type or "text/csv")}
    if kind == "members" and points is not None and points.filename:
        files["points"] = (points.filename, await points.read(), points.content_type or "text/csv")
    job = await clients.call("identity", "POST", "/v1/imports", token=session.token, files=files)
    return Response(status_code=204, headers={"HX-Redirect": f"/admin/imports/{job['import_id']}"})


# -- webhooks ---------------------------------------------------------------------------------------------


@router.get("/admin/webhooks")
async def webhooks(request: Request, session: SessionDep, clients: ClientsDep) -> Response:
    """Every webhook subscription, and the form to add one."""
    subs, types = await asyncio.gather(clients.get("alerts", "/v1/webhooks", token=session.token),
                                       clients.get("alerts", "/v1/webhooks/event-types", token=session.token))
    return admin_render(request, "admin/webhooks.html", subs=subs["items"], types=types, created=None)


@router.post("/admin/webhooks")
async def create_webhook(request: Request, session: SessionDep, clients: ClientsDep,
                         url: Annotated[str, Form(max_length=2000)],
                         event_types: Annotated[list[str], Form()],
                         description: Annotated[str, Form(max_length=500)] = "") -> Response:
    """Subscribe a URL; the answer shows the generated secret once."""
    created = await clients.post("alerts", "/v1/webhooks", token=session.token,
                                 body={"url": url.strip(), "event_types": event_types,
                                       "description": description.strip() or None})
    return render(request, "admin/_webhook_created.html", created=created)


@router.get("/admin/webhooks/{webhook_id}")
async def deliveries(request: Request, webhook_id: str, session: SessionDep, clients: ClientsDep,
                     status: str | None = Query(None), offset: int = Query(0, ge=0)) -> Response:
    """A subscription's deliveries, newest first, filtered by status and paged."""
    status = status if status in DELIVERY_STATUSES else None
    sub, page = await asyncio.gather(
        clients.get("alerts", f"/v1/webhooks/{webhook_id}", token=session.token),
        clients.get("alerts", f"/v1/webhooks/{webhook_id}/deliveries", token=session.token, status=status,
                    offset=offset, limit=PAGE))
    template = "admin/_deliveries.html" if is_htmx(request) else "admin/webhook.html"
    return admin_render(request, template, sub=sub, page=page, status=status or "", statuses=DELIVERY_STATUSES)


@router.post("/admin/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver")
async def redeliver(request: Request, webhook_id: str, delivery_id: str, session: SessionDep,
                    clients: ClientsDep) -> Response:
    """Send a dead delivery again."""
    d = await clients.post("alerts", f"/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
                           token=session.token)
    # htmx swaps this in as HTML: a status the console has no words for is the API's text, so it is escaped.
    return Response(str(escape(_(DELIVERY_STATUSES.get(d["status"], d["status"])))), media_type="text/html")


# -- erasure and export -----------------------------------------------------------------------------------


@router.get("/admin/privacy")
async def privacy(request: Request, session: SessionDep, clients: ClientsDep,
                  cursor: str | None = Query(None, max_length=512)) -> Response:
    """Erasure and export requests so far (from the audit log), erasures with their progress; the forms."""
    entries, next_cursor = await _started(clients, session.token, ("privacy.erasure", "privacy.export"), cursor)
    states = await asyncio.gather(*(clients.optional("identity", f"/v1/erasures/{e['target']}", token=session.token)
                                    if e["action"] == "privacy.erasure" and e["target"] else _none()
                                    for e in entries))
    rows = [{"entry": e, "erasure": s} for e, s in zip(entries, states, strict=True)]
    return admin_render(request, "admin/privacy.html", rows=rows, next_cursor=next_cursor, cursor=cursor)


async def _none() -> None:
    return None


@router.post("/admin/privacy/erasure")
async def erase(request: Request, session: SessionDep, clients: ClientsDep,
                customer_id: Annotated[str, Form(max_length=64)], reason: Annotated[str, Form(max_length=2000)],
                confirm: Annotated[str, Form()] = "") -> Response:
    """Erase a customer in every service (the checkbox confirms it cannot be undone)."""
    if confirm != "yes":
        return render(request, "errors/_flash.html", 422, headers=FLASH,
                      message=_("Tick the box to confirm: an erasure cannot be undone."))
    done = await clients.post("identity", f"/v1/customers/{customer_id.strip()}/erasure", token=session.token,
                              body={"reason": reason})
    state = await clients.optional("identity", f"/v1/erasures/{done['erasure_id']}", token=session.token)
    return render(request, "admin/_erasure_started.html", erasure_id=done["erasure_id"], state=state)


@router.post("/admin/privacy/export")
async def export(request: Request, session: SessionDep, clients: ClientsDep,
                 customer_id: Annotated[str, Form(min_length=1, max_length=64)],
                 reason: Annotated[str, Form(max_length=500)] = "", csrf: Annotated[str, Form()] = "") -> Response:
    """Everything held of a customer, as a JSON file (recorded in the audit log)."""
    # A plain form post (the browser downloads the answer), so the CSRF token comes as a field, not a header.
    if not hmac.compare_digest(csrf, session.csrf):
        return render(request, "errors/error.html", 403, title=_("Request refused"),
                      message=_("The page was out of date. Reload it and try again."))
    data = await clients.get("identity", f"/v1/customers/{customer_id.strip()}/export", token=session.token,
                             reason=reason.strip() or None)
    return Response(json.dumps(data, ensure_ascii=False, indent=2), media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="export-{data["customer_id"]}.json"'})
