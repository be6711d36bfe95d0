"""Sign-in (identity's OAuth2 password flow), sign-out, the language switch and the home page."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from services.console import i18n
from services.console.clients import ApiError
from services.console.i18n import _
from services.console.session import COOKIE, Session
from services.console.web import ClientsDep, SessionDep, render

router = APIRouter()
YEAR_S = 365 * 86_400


def _safe_next(target: str | None) -> str:
    # Only a path on this site: an absolute URL in ?next= would send a fresh session elsewhere. Browsers read
    # "/\\evil.example" as "//evil.example" and drop tabs and newlines ("/\t/evil.example"), so a backslash or
    # a control character anywhere, or anything urlsplit reads as a scheme or host, is refused too.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/customers"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        return "/customers"
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else "/customers"


@router.get("/")
def home(session: SessionDep) -> Response:
    """The first page after sign-in: customer search."""
    return RedirectResponse("/customers", status_code=303)


@router.get("/sign-in")
def sign_in_page(request: Request, next: str | None = None) -> Response:
    """The sign-in form."""
    return render(request, "auth/sign_in.html", next=_safe_next(next), user="", error=None)


@router.post("/sign-in")
async def sign_in(request: Request, clients: ClientsDep, user: Annotated[str, Form(max_length=128)],
                  password: Annotated[str, Form(max_length=1024)], next: Annotated[str, Form()] = "/customers"
                  ) -> Response:
    """Exchange user and password for a staff token and keep it sealed in the session cookie."""
    try:
        answer = await clients.sign_in(user, password)
    except ApiError as exc:
        if exc.status in (400, 401, 422):
            return render(request, "auth/sign_in.html", 401, next=_safe_next(next), user=user,
                          error=_("Wrong user name or password."))
        if exc.status == 429:
            return render(request, "auth/sign_in.html", 429, next=_safe_next(next), user=user,
                          error=_("Too many sign-in attempts. Wait a minute and try again."))
        raise
    session = Session.new(answer["access_token"], user=user, ttl_s=int(answer["expires_in"]))
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(COOKIE, session.seal(request.app.state.fernet), max_age=int(answer["expires_in"]),
                        httponly=True, samesite="strict",
                        secure=request.app.state.secure_cookies or request.url.scheme == "https")
    return response


@router.post("/sign-out")
async def sign_out(session: SessionDep, clients: ClientsDep) -> Response:
    """Revoke the session's token at identity, so that a copy of it is refused by every service, then forget the
    session (htmx follows the redirect header to the sign-in form)."""
    try:
        await clients.sign_out(session.token)
    except ApiError as exc:
        # Already refused (expired, or signed out elsewhere): nothing left to revoke; a token from before tokens
        # had ids cannot be revoked (422 not_a_token) and runs out by itself. Anything else (identity did not
        # answer) keeps the session, so the person sees it did not work and can sign out again.
        if exc.status != 401 and (exc.status, exc.code) != (422, "not_a_token"):
            raise
    response = Response(status_code=204, headers={"HX-Redirect": "/sign-in"})
    response.delete_cookie(COOKIE)
    return response


@router.get("/lang/{locale}")
def switch_language(locale: str, next: str | None = None) -> Response:
    """Switch between Simplified Chinese and English (kept in a cookie) and go back to the page."""
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(i18n.LANG_COOKIE, i18n.pick(locale), max_age=YEAR_S, samesite="lax")
    return response
