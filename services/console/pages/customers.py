"""Customer search (phone in any notation, member card, WeChat id, name for staff of the owning store) and the
customer 360 page."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from services.console.clients import ApiError
from services.console.i18n import N_, _
from services.console.pages.alerts import alert_context
from services.console.web import ClientsDep, SessionDep, is_htmx, render, zone_of
from services.console.wording import worded

router = APIRouter()
PAGE = 20
KINDS = {"auto": N_("Any identifier"), "phone": N_("Phone"), "member_id": N_("Member card"),
         "wechat_openid": N_("WeChat OpenID"), "wechat_unionid": N_("WeChat UnionID"), "email": N_("E-mail"),
         "name": N_("Full name")}
# Identity's profile fields (crm.profile) in words; any other attribute keeps its own key.
FIELDS = {"name": N_("Full name"), "gender": N_("Gender"), "birthday": N_("Birthday"), "email": N_("E-mail"),
          "city": N_("City")}
NOT_FOUND = {"id": N_("No customer in your stores has that identifier."),
             "name": N_("No customer in your stores has that name."),
             "both": N_("No customer in your stores has that identifier or name.")}
TOO_LONG_NAME = N_("A name has at most 200 characters.")
# What a phone looks like when typed: digits with spaces, dashes, dots, brackets or a leading +.
_PHONE_LIKE = re.compile(r"^\+?[\d\s().\-]{7,}$")
# A space or a character beyond ASCII (Chinese, full-width): a name, never a card number or a WeChat id.
_NAME_LIKE = re.compile(r"[^\x21-\x7e]")


def _tries(q: str, kind: str) -> list[str]:
    if kind != "auto":
        return [kind]
    if _PHONE_LIKE.match(q):
        return ["phone"]
    if "@" in q:
        return ["email"]
    if _NAME_LIKE.search(q):
        return ["name"]
    return ["member_id", "wechat_openid", "wechat_unionid", "name"]


def _not_found(tries: list[str]) -> str:
    key = "both" if "name" in tries and len(tries) > 1 else "name" if "name" in tries else "id"
    return _(NOT_FOUND[key])


@router.get("/customers")
def search_page(request: Request, session: SessionDep) -> Response:
    """The search form (its phone is posted, never put in the address: no history, log or link keeps it)."""
    return render(request, "customers/search.html", q="", kind="auto", kinds=KINDS, message=None)


@router.post("/customers/search")
async def search(request: Request, session: SessionDep, clients: ClientsDep,
                 q: Annotated[str, Form(max_length=256)] = "", kind: Annotated[str, Form()] = "auto",
                 offset: Annotated[int, Form(ge=0, le=10_000)] = 0) -> Response:
    """Find a customer by an identifier or a name; one found, go to their page (htmx follows HX-Redirect);
    several of one name, list them (masked, a page at a time)."""
    q, kind = q.strip(), kind if kind in KINDS else "auto"
    message, matches = None, None
    if q:
        tries = _tries(q, kind)
        for name in tries:
            try:
                if name == "name":
                    # Posted to the console and sent on to identity only: never in this page's address.
                    page = await clients.get("identity", "/v1/customers/search", token=session.token, name=q,
                                             offset=offset, limit=PAGE + 1)
                    matches = page["items"]
                    if len(matches) != 1 or offset:
                        break
                    found = matches[0]
                else:
                    found = await clients.get("identity", "/v1/customers/lookup", token=session.token, **{name: q})
            except ApiError as exc:
                if exc.status == 404:
                    continue
                if exc.status == 422:
                    # Identity's sentence is English: said in the page's language (a till's typo: invalid_phone).
                    message = _(TOO_LONG_NAME) if name == "name" else worded(exc)
                    break
                raise
            target = f"/customers/{found['customer_id']}"
            if is_htmx(request):
                return Response(status_code=204, headers={"HX-Redirect": target})
            return RedirectResponse(target, status_code=303)
        if not matches:
            message = message or _not_found(tries)
    found_many = {"matches": matches[:PAGE], "more": len(matches) > PAGE, "offset": offset,
                  "page_size": PAGE} if matches else {}
    if is_htmx(request):
        return render(request, "customers/_search_message.html", message=message, **found_many)
    return render(request, "customers/search.html", 404 if message else 200, q=q, kind=kind, kinds=KINDS,
                  message=message, **found_many)


@router.get("/customers/{customer_id}")
async def customer_page(request: Request, customer_id: str, session: SessionDep, clients: ClientsDep) -> Response:
    """Customer 360: profile with sources, identifiers, stats, points, alerts, campaigns, value, timeline."""
    token = session.token
    # The identity view first: a customer outside the person's stores is a 404 here, before anything else.
    view = await clients.get("identity", f"/v1/customers/{customer_id}", token=token)
    cid = view["customer_id"]
    account, tiers, ledger, timeline, alerts, value = await asyncio.gather(
        clients.optional("loyalty", f"/v1/loyalty/accounts/{cid}", token=token),
        clients.optional("loyalty", f"/v1/loyalty/accounts/{cid}/tiers", token=token),
        clients.optional("loyalty", f"/v1/loyalty/accounts/{cid}/ledger", token=token, limit=PAGE),
        clients.get("identity", f"/v1/customers/{cid}/timeline", token=token, limit=PAGE),
        clients.get("alerts", "/v1/alerts", token=token, customer_id=cid, limit=PAGE),
        clients.optional("alerts", f"/v1/customers/{cid}/value", token=token))
    zone = zone_of(request, view["stats"].get("home_store"))
    return render(request, "customers/view.html", c=view, account=account, tiers=tiers, ledger=ledger,
                  timeline=timeline, value=value, zone=zone, fields=FIELDS,
                  **alert_context(alerts))


@router.get("/customers/{customer_id}/timeline")
async def timeline_page(request: Request, customer_id: str, session: SessionDep, clients: ClientsDep,
                        cursor: str = Query(..., max_length=512)) -> Response:
    """The next page of the timeline (htmx appends it)."""
    page = await clients.get("identity", f"/v1/customers/{customer_id}/timeline", token=session.token,
                             cursor=cursor, limit=PAGE)
    return render(request, "customers/_timeline_rows.html", timeline=page, cid=customer_id)


@router.get("/customers/{customer_id}/ledger")
async def ledger_page(request: Request, customer_id: str, session: SessionDep, clients: ClientsDep,
                      cursor: str = Query(..., max_length=512)) -> Response:
    """The next page of the points ledger (htmx appends it)."""
    page = await clients.get("loyalty", f"/v1/loyalty/accounts/{customer_id}/ledger", token=session.token,
                             cursor=cursor, limit=PAGE)
    return render(request, "customers/_ledger_rows.html", ledger=page, cid=customer_id)
