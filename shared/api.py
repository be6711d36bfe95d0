"""What every service's HTTP API shares: key auth with roles, error mapping, health and metrics."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from shared.errors import DomainError, Forbidden, Unauthorized
from shared.ratelimit import install_rate_limits
from shared.settings import ROLES, Role, Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Caller:
    """Who is calling: a key fingerprint (never the key) and its role."""

    key_id: str
    role: Role

    def at_least(self, role: Role) -> bool:
        """Whether this caller's role includes ``role``."""
        return ROLES.index(self.role) >= ROLES.index(role)


def _key_id(key: str) -> str:
    import hashlib

    return "key_" + hashlib.sha256(key.encode()).hexdigest()[:10]


def require(role: Role) -> Callable[..., Caller]:
    """A dependency that admits callers whose key has at least ``role``."""

    def check(request: Request) -> Caller:
        keys: dict[str, Role] = request.app.state.api_keys
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("missing_credentials", "send Authorization: Bearer <key>")
        for key, key_role in keys.items():
            if hmac.compare_digest(key.encode(), token.strip().encode()):
                caller = Caller(_key_id(key), key_role)
                break
        else:
            raise Unauthorized("invalid_key", "that API key is not known")
        if not caller.at_least(role):
            raise Forbidden("forbidden", f"this action needs the {role} role")
        return caller

    return check


def _error(status: int, code: str, message: str, details: object | None = None) -> JSONResponse:
    body: dict = {"error": {"code": code, "message": message}}
    if details is not None:
        body["error"]["details"] = details
    return JSONResponse(body, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """Domain errors and validation errors become JSON ``{"error": {code, message}}``."""

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()
        ]
        return _error(422, "invalid_request", "the request is not valid", details)

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error: %s", type(exc).__name__)
        return _error(500, "internal_error", "something went wrong on our side")


def health_router(ready_checks: dict[str, Callable[[], object]], registry: CollectorRegistry) -> APIRouter:
    """``/livez`` (checks nothing), ``/readyz`` (broker and store), ``/metrics``."""
    router = APIRouter()

    @router.get("/livez", include_in_schema=False)
    def livez() -> dict:
        return {"status": "ok"}

    @router.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        results = {}
        for name, check in ready_checks.items():
            try:
                check()
                results[name] = "ok"
            except Exception as exc:  # a failing check reports, it does not crash the probe
                results[name] = f"failing: {type(exc).__name__}"
        ok = all(v == "ok" for v in results.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": results},
                            status_code=200 if ok else 503)

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
    app = FastAPI(title=title, version="1.0.0", telemetry={"tracing": False, "operation_spans": False, "logs": False})
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls="livez,readyz,metrics")
    app.state.api_keys = settings.key_roles()
    install_error_handlers(app)
    install_rate_limits(app, settings)
    app.include_router(health_router(ready_checks, registry))
    for router in routers:
        app.include_router(router, prefix="/v1")
    return app


def caller_dep(role: Role):
    """``Depends(require(role))`` spelled once."""
    return Depends(require(role))
