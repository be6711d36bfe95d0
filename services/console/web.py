"""What every page module uses: the templates (with the catalogue and formats), the signed-in session as a
dependency, the clients, and ``render``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import jwt
from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from starlette.responses import Response

from services.console import i18n
from services.console.clients import Clients
from services.console.session import Session
from shared.settings import Settings

env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True,
                  extensions=["jinja2.ext.i18n"])
TEMPLATES = Jinja2Templates(env=env)
env.install_gettext_callables(  # type: ignore[attr-defined]
    lambda m: i18n.translations(i18n.current()).gettext(m),
    lambda s, p, n: i18n.translations(i18n.current()).ngettext(s, p, n), newstyle=True)
env.globals.update(money=i18n.money, number=i18n.number, LOCALES=i18n.LOCALES)


class SignInNeeded(Exception):
    """No valid session: the page sends the person to sign in (and back afterwards)."""


def session_of(request: Request) -> Session:
    """The signed-in session (the middleware opened the cookie), or SignInNeeded."""
    session = request.state.session
    if session is None:
        raise SignInNeeded()
    return session


SessionDep = Annotated[Session, Depends(session_of)]


def clients(request: Request) -> Clients:
    """The app's pooled service clients."""
    return request.app.state.clients


ClientsDep = Annotated[Clients, Depends(clients)]


def platform(request: Request) -> Settings:
    """The platform's settings (zones, stores)."""
    return request.app.state.platform


def zone_of(request: Request, store_id: str | None = None):
    """The zone a store counts its days in (Asia/Shanghai unless the store's says otherwise)."""
    return platform(request).store_zone(store_id)


def is_admin(session: Session | None) -> bool:
    """Whether the session's token is a company-wide admin's, the one the admin pages serve (the nav's link);
    the services still check every call."""
    if session is None:
        return False
    try:
        # Not verified here: the token came sealed in our own cookie, and every service verifies it on use.
        claims = jwt.decode(session.token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return False
    return claims.get("role") == "admin" and claims.get("scope") == "company"


def render(request: Request, template: str, status_code: int = 200, *, headers: dict | None = None,
           **context: Any) -> Response:
    """A page (or, for htmx, a partial) rendered in the request's locale."""
    zone = context.pop("zone", None) or zone_of(request)
    # The language links come back here with the page's filters, but never with a search's words (``q``,
    # a phone or name from an old link): those would sit in the next address and the browser's history.
    query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "q"])
    base = {"session": request.state.session, "locale": i18n.current(), "lang": i18n.LOCALES[i18n.current()],
            "when": lambda v, z=zone: i18n.when(v, z),
            "here": quote(str(request.url.path) + (f"?{query}" if query else ""), safe="")}
    base["is_admin"] = is_admin(request.state.session)  # the nav's admin link
    return TEMPLATES.TemplateResponse(request, template, {**base, **context}, status_code=status_code,
                                      headers=headers)


def is_htmx(request: Request) -> bool:
    """Whether the request came from htmx (answer with a partial, not a page)."""
    return request.headers.get("HX-Request") == "true"
