"""What every service's HTTP API shares: key auth with roles (settled by the gate in ``guard`` before a
body is read), one error format for every failure, the documented statuses (``docs``), health, metrics."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pymongo.errors import ConnectionFailure, PyMongoError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.access.auth import Authenticator
from shared.access.stores import registry_for
from shared.http.docs import errors, install_openapi
from shared.http.errors import DomainError, Forbidden, InvalidInput, Unavailable
from shared.http.guard import CALLER_SCOPE_KEY, Caller, Gate, authenticate, route_rules
from shared.http.ratelimit import install_ingest_shedding, install_rate_limits
from shared.settings import Role, Settings

__all__ = ["Caller", "caller_dep", "errors", "install_error_handlers", "require", "service_api"]

log = logging.getLogger(__name__)

# SQLite's answers when another process holds the file or the disk is full: passing, so 503, not 500.
_STORE_BUSY = ("database is locked", "database table is locked", "database or disk is full", "disk i/o error",
               "unable to open database file")
_HTTP_CODES = {404: ("not_found", "no such route"), 405: ("method_not_allowed", "this route does not take that method")}


def require(role: Role) -> Callable[..., Caller]:
    """A dependency that admits callers whose key has at least ``role``."""

    def check(request: Request) -> Caller:
        # The gate authenticated the request before its body was read; without the gate, do it here.
        caller = request.scope.get(CALLER_SCOPE_KEY)
        if caller is None:
            caller = authenticate(request.app.state.auth, request.headers.get("authorization", ""))
        if not caller.at_least(role):
            raise Forbidden("forbidden", f"this action needs the {role} role")
        return caller

    check.crm_role = role  # type: ignore[attr-defined]  # read by the gate to check the role first
    return check


def _error(exc: DomainError, status: int | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(exc.payload(), status_code=status or exc.status, headers={**exc.headers(), **(headers or {})})


def store_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the store is busy or out of reach for now (rather than a bug)."""
    if isinstance(exc, sqlite3.OperationalError):
        return str(exc).lower().startswith(_STORE_BUSY)
    # A MongoDB transaction aborted by a concurrent one (a write conflict: every campaigns write bumps its log's
    # one generation document) succeeds when tried again.
    return isinstance(exc, ConnectionFailure) or (isinstance(exc, PyMongoError)
                                                  and exc.has_error_label("TransientTransactionError"))


def install_error_handlers(app: FastAPI) -> None:
    """Every error answer is JSON ``{"error": {code, message, details?}}``: domain, validation, HTTP, crashes."""

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()
        ]
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return _error(InvalidInput("invalid_json", "the body is not valid JSON", details=details))
        return _error(InvalidInput("invalid_request", "the request is not valid", details=details))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and request.headers.get("content-type", "").startswith("multipart/"):
            # Starlette's "Invalid multipart data" (a file upload route, e.g. POST /v1/imports): a bad request
            # body like any other, answered as the documented 422.
            return _error(InvalidInput("invalid_multipart", "the body is not valid multipart/form-data"))
        if exc.status_code == 400 and exc.__cause__ is not None:
            # FastAPI's "There was an error parsing the body": bytes that are not text (not UTF-8).
            return _error(InvalidInput("invalid_json", "the body is not valid JSON text (UTF-8)"))
        code, message = _HTTP_CODES.get(exc.status_code, (f"http_{exc.status_code}", str(exc.detail)))
        return _error(DomainError(code, message), status=exc.status_code, headers=exc.headers)

    @app.exception_handler(sqlite3.OperationalError)
    @app.exception_handler(PyMongoError)
    async def _store(_: Request, exc: Exception) -> JSONResponse:
        return _unavailable_or_crash(exc)

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error: %s", type(exc).__name__)
        return _error(DomainError("internal_error", "something went wrong on our side"), status=500)


def _unavailable_or_crash(exc: BaseException) -> JSONResponse:
    if store_unavailable(exc):
        log.warning("store unavailable: %s", type(exc).__name__)
        return _error(Unavailable("store_unavailable", "the store is busy or out of reach; try again shortly"))
    log.error("unhandled store error: %s", type(exc).__name__, exc_info=exc)
    return _error(DomainError("internal_error", "something went wrong on our side"), status=500)


def health_router(ready_checks: dict[str, Callable[[], object]], registry: CollectorRegistry) -> APIRouter:
    """``/livez`` (checks nothing), ``/readyz`` (broker and store), ``/metrics``."""
    router = APIRouter()

    @router.get("/livez", include_in_schema=False)
    def livez() -> dict:
        return {"status": "ok"}

    @router.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        results, details = {}, {}
        for name, check in ready_checks.items():
            try:
                check()
                results[name] = "ok"
            except Exception as exc:  # a failing check reports, it does not crash the probe
                results[name] = f"failing: {type(exc).__name__}"
                if getattr(exc, "explains_readiness", False):  # our own words (what, for how long), no data
                    details[name] = str(exc)
        ok = all(v == "ok" for v in results.values())
        body = {"status": "ok" if ok else "unavailable", "checks": results, **({"details": details} if details else {})}
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router


def service_api(
    title: str,
    settings: Settings,
    routers: list[APIRouter],
    ready_checks: dict[str, Callable[[], object]],
    registry: CollectorRegistry,
) -> FastAPI:
    """A service's FastAPI app with auth, error mapping, health and metrics in place."""
    # FastAPI's own telemetry is off: the OpenTelemetry FastAPI instrumentation makes the server spans.
    app = FastAPI(title=title, version="1.0.0", description=_description(settings),
                  telemetry={"tracing": False, "operation_spans": False, "logs": False})
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls="livez,readyz,metrics")
    app.state.auth = Authenticator(settings)
    app.state.stores = registry_for(settings.stores_file)  # regions of the scopes (shared/access/visibility.py)
    install_error_handlers(app)
    app.include_router(health_router(ready_checks, registry))
    for router in routers:
        app.include_router(router, prefix="/v1")
    # Middleware added last runs first: the request budgets, then the gate (key, role, body size and content
    # type, before FastAPI reads a body), then ingestion's event budget and in-flight bound.
    install_ingest_shedding(app, settings)
    app.add_middleware(Gate, rules=route_rules(routers), max_body_bytes=settings.max_body_bytes)
    install_rate_limits(app, settings)
    install_openapi(app)
    return app


def _description(settings: Settings) -> str:
    return (
        "Everything under `/v1` needs `Authorization: Bearer <key>` (an API key, or a staff token from identity's "
        "`POST /v1/auth/token`); the credential and its role are checked before the body is read. "
        "Errors are JSON `{\"error\": {\"code\", \"message\", \"details\"?}}` (the `Error` "
        f"schema). Request bodies are JSON (415 otherwise) of at most {settings.max_body_bytes} bytes (413 "
        "otherwise). 429 and 503 carry `Retry-After` in seconds."
    )


def caller_dep(role: Role):
    """``Depends(require(role))`` spelled once."""
    return Depends(require(role))
