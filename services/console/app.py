"""``create_app``: the console's composition root (settings, clients, pages, sessions, locale, error pages)."""

from __future__ import annotations

import hmac
import time
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from services.console import i18n
from services.console.clients import ApiError, Clients
from services.console.config import ConsoleSettings
from services.console.i18n import _
from services.console.pages import NAV, ROUTERS
from services.console.session import COOKIE, CSRF_HEADER, Session, sealer
from services.console.web import TEMPLATES, SignInNeeded, is_htmx, render
from services.console.wording import worded
from shared.settings import Settings

HERE = Path(__file__).parent
# Scripts only from this site (no inline handlers); inline styles allowed, since htmx sets some while it swaps;
# no framing; no address (a search's phone in ?q=) sent to another site.
SECURITY_HEADERS = {"Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                               "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; "
                                               "base-uri 'none'",
                    "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
                    "Cache-Control": "no-store"}
# Posts that may come without a session (and so without its CSRF token).
OPEN_POSTS = {"/sign-in"}
# Plain form posts whose answer the browser downloads (no htmx, so no header): the route checks the form's
# ``csrf`` field against the session's instead.
FORM_POSTS = {"/admin/privacy/export"}


def create_app(settings: Settings | None = None, *, console: ConsoleSettings | None = None,
               transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """The console app; ``transport`` lets a test route the service calls (the real APIs otherwise)."""
    settings = settings or Settings()
    console = console or ConsoleSettings()
    clients = Clients(console, settings, transport=transport)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await clients.close()

    app = FastAPI(title="CRM console", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.clients, app.state.platform, app.state.fernet = clients, settings, sealer(settings)
    app.state.secure_cookies = console.secure_cookies
    for router in ROUTERS:
        app.include_router(router)
    TEMPLATES.env.globals["NAV"] = NAV
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    # Front-end packages straight from npm's folder (`make up` runs `npm ci`); nothing built is committed.
    modules = Path(console.assets_dir) if console.assets_dir else HERE / "node_modules"
    app.mount("/vendor/htmx", StaticFiles(directory=modules / "htmx.org" / "dist", check_dir=False), name="htmx")
    app.mount("/vendor/echarts", StaticFiles(directory=modules / "echarts" / "dist", check_dir=False),
              name="echarts")

    @app.get("/livez", include_in_schema=False)
    @app.get("/readyz", include_in_schema=False)
    def health() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.middleware("http")
    async def session_and_locale(request: Request, call_next) -> Response:
        started = time.perf_counter()
        i18n.use(request.cookies.get(i18n.LANG_COOKIE, i18n.DEFAULT))
        session = Session.open(request.cookies.get(COOKIE), app.state.fernet)
        request.state.session = session
        if request.method not in ("GET", "HEAD") and request.url.path in OPEN_POSTS:
            # No session yet, so no CSRF token: a sign-in posted by another site's page (which would sign the
            # person in as someone else) is told apart by what browsers send with every form post: Sec-Fetch-Site,
            # and an Origin naming another host (our own pages send "null", their Referrer-Policy being no-referrer;
            # host only, since behind a TLS-terminating proxy the page is https while the console sees http).
            origin = request.headers.get("origin", "null")
            if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none") or (
                    origin != "null" and urlsplit(origin).netloc != request.url.netloc):
                response = _refused(request)
            else:
                response = await call_next(request)
        elif request.method not in ("GET", "HEAD"):
            if session is None:
                response = _to_sign_in(request)
            elif request.url.path in FORM_POSTS:
                response = await call_next(request)
            elif not hmac.compare_digest(request.headers.get(CSRF_HEADER, ""), session.csrf):
                response = _refused(request)
            else:
                response = await call_next(request)
        else:
            response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        # The page's server time (the services' answers included), for the browser's tools and benchmarks.
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response

    @app.exception_handler(SignInNeeded)
    async def sign_in_needed(request: Request, exc: SignInNeeded) -> Response:
        return _to_sign_in(request)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        if exc.status == 401:
            return _to_sign_in(request)
        if is_htmx(request):
            # An action on a page: the words go into the page's message area, the page stays.
            return render(request, "errors/_flash.html", exc.status, message=_flash(exc),
                          headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"})
        if exc.status == 404:
            return render(request, "errors/not_found.html", 404)
        if exc.status == 403:
            return render(request, "errors/forbidden.html", 403)
        if exc.status in (409, 422):
            # In the page's language, never the API's English sentence (services/console/wording.py).
            return render(request, "errors/error.html", exc.status, title=_("That did not work"),
                          message=worded(exc))
        if exc.status == 429:
            # The person's key is over its rate: the platform is up, waiting helps.
            return render(request, "errors/error.html", 429, title=_("That did not work"), message=_flash(exc))
        return render(request, "errors/error.html", 503, title=_("A service is unavailable"),
                      message=_("The platform did not answer. Try again in a moment; if it persists, tell IT."))

    @app.exception_handler(StarletteHTTPException)
    async def no_page(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return render(request, "errors/not_found.html", 404)
        # Starlette's own refusals (a method the address does not take) in words, not its JSON.
        return render(request, "errors/error.html", exc.status_code, title=_("That did not work"),
                      message=_("This address does not take that request. Go back and use the page's buttons."))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        # The console's own refusal in words; FastAPI's JSON would echo what was sent (a typed phone included).
        message = _("The request was not valid (a value too long or out of range). Go back, correct it and try "
                    "again.")
        if is_htmx(request):
            return render(request, "errors/_flash.html", 422, message=message,
                          headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"})
        return render(request, "errors/error.html", 422, title=_("Invalid request"), message=message)

    return app


def _refused(request: Request) -> Response:
    message = _("The page was out of date. Reload it and try again.")
    if is_htmx(request):
        return render(request, "errors/_flash.html", 403, message=message,
                      headers={"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"})
    return render(request, "errors/error.html", 403, title=_("Request refused"), message=message)


def _flash(exc: ApiError) -> str:
    if exc.status == 404:
        return _("Not found, or not in your stores.")
    if exc.status == 403:
        return _("Your role may not do this.")
    if exc.status in (409, 422):
        return worded(exc)
    if exc.status == 429:
        return _("Too many requests at once. Wait a moment and try again.")
    return _("The platform did not answer. Try again in a moment; if it persists, tell IT.")


def _to_sign_in(request: Request) -> Response:
    # Back to the page after sign-in: an htmx panel's page (the panel alone is a fragment); an action's address
    # takes only its method, so that goes to the start.
    path = request.url.path
    if is_htmx(request) and request.headers.get("HX-Current-URL"):
        path = urlsplit(request.headers["HX-Current-URL"]).path or "/"
    target = "/sign-in?next=" + quote(path, safe="") if request.method in ("GET", "HEAD") else "/sign-in"
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(COOKIE)
    return response


def serve() -> None:
    """Run the console (what ``crm console`` and ``crm up`` start)."""
    import uvicorn

    settings, console = Settings(), ConsoleSettings()
    uvicorn.run(create_app(settings, console=console), host=settings.api_host, port=console.port,
                log_config=None, access_log=False)
