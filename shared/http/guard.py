"""The gate every request passes before FastAPI reads its body: key, role, body size, content type.

FastAPI reads and parses a request's JSON body before it runs any dependency, so a key checked in a
dependency comes too late: an unauthenticated caller with a malformed body learnt about the body (422)
instead of being turned away (401), and any caller could make the service buffer a body of any size.
This ASGI middleware answers those cases itself, in the error format, and then hands FastAPI the body
it already read. It also turns an unhandled exception into a 500 without re-raising it: Starlette's
own 500 path re-raises, and uvicorn then drops the kept-alive connection, so a client of a POST could
not tell whether its request took effect.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import APIRouter
from fastapi.params import Form
from fastapi.routing import APIRoute
from opentelemetry.trace import Status, StatusCode, get_current_span
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.access.auth import Authenticator
from shared.access.principals import Caller
from shared.http.errors import DomainError, Forbidden, TooLarge, UnsupportedMediaType
from shared.settings import Role

log = logging.getLogger(__name__)

API_PREFIX = "/v1"
# Where the caller the gate admitted waits for ``require`` (so the key is compared once per request).
CALLER_SCOPE_KEY = "crm.caller"


def authenticate(auth: Authenticator, header: str) -> Caller:
    """The caller an ``Authorization: Bearer <key or token>`` header names; ``Unauthorized`` if none."""
    return auth.authenticate(header)


@dataclass(frozen=True)
class RouteRule:
    """What the gate needs to know of one route: its method and path, the role it needs, whether it reads JSON."""

    methods: frozenset[str]
    path: re.Pattern
    role: Role | None
    takes_json: bool


def route_rules(routers: Iterable[APIRouter], prefix: str = API_PREFIX) -> list[RouteRule]:
    """The rules of every route of ``routers`` as mounted under ``prefix``."""
    rules = []
    for router in routers:
        for route in router.routes:
            if not isinstance(route, APIRoute):
                continue
            role = next((d.call.crm_role for d in route.dependant.dependencies if hasattr(d.call, "crm_role")), None)
            regex, _, _ = compile_path(prefix + route.path)
            # A route that reads its own body declares it in openapi_extra (POST /v1/events does); a form
            # (the sign-in's OAuth2 password form) is not JSON.
            form = route.body_field is not None and isinstance(route.body_field.field_info, Form)
            takes_json = (route.body_field is not None and not form) or "requestBody" in (route.openapi_extra or {})
            rules.append(RouteRule(frozenset(route.methods), regex, role, takes_json))
    return rules


def is_json(content_type: str) -> bool:
    """Whether a Content-Type names JSON (``application/json`` or ``application/<x>+json``)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


class Gate:
    """ASGI middleware: authenticate ``/v1``, check the route's role, bound and type the body, contain crashes."""

    def __init__(self, app: ASGIApp, *, rules: list[RouteRule], max_body_bytes: int) -> None:
        self.app = app
        self.rules = rules
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            body = await self._admit(scope, receive)
        except DomainError as exc:
            await _send_error(send, exc)
            return
        except _ClientGone:
            return  # nobody is left to answer
        await self._run(scope, _replay(body, receive), send)

    async def _admit(self, scope: Scope, receive: Receive) -> bytes | None:
        """The request's body once it may be read (``None`` without one); raises the error to answer."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path: str = scope["path"]
        rule = None
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            rule = self._rule(scope["method"], path)
            # A route that asks for no role (a sign-in) is open; any other path under /v1 needs a key,
            # an unknown one too, so a stranger learns nothing about which routes exist.
            if rule is None or rule.role is not None:
                # The budgets in front (shared/http/ratelimit.py) may have identified the caller already.
                auth = scope["app"].state.auth
                caller = scope.get(CALLER_SCOPE_KEY) or authenticate(auth, headers.get("authorization", ""))
                if caller.token_id is not None:
                    # The budgets in front judged it against the list as it was: bring it up to date and look again.
                    await auth.revocations.refresh()
                    auth.not_revoked(caller)
                scope[CALLER_SCOPE_KEY] = caller
                if rule is not None and not caller.at_least(rule.role):
                    raise Forbidden("forbidden", f"this action needs the {rule.role} role")
        length = _content_length(headers)
        has_body = (length is not None and length > 0) or "chunked" in headers.get("transfer-encoding", "").lower()
        if not has_body:
            return None
        if length is not None and length > self.max_body_bytes:
            raise _too_large(self.max_body_bytes)
        if rule is not None and rule.takes_json and not is_json(headers.get("content-type", "")):
            raise UnsupportedMediaType("unsupported_media_type",
                                       "send the body as JSON (Content-Type: application/json)")
        return await self._read(receive)

    def _rule(self, method: str, path: str) -> RouteRule | None:
        for rule in self.rules:
            if method in rule.methods and rule.path.match(path):
                return rule
        return None

    async def _read(self, receive: Receive) -> bytes:
        """The whole body, refused as soon as it passes the limit (a chunked body has no length up front)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _too_large(self.max_body_bytes)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:  # the last stop: answer 500 and keep the connection, never re-raise
            span = get_current_span()
            if span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
            if not started:
                await _send_error(send, DomainError("internal_error", "something went wrong on our side"), status=500)


class _ClientGone(Exception):
    """The client disconnected while sending its body."""


def _content_length(headers: dict[str, str]) -> int | None:
    try:
        return int(headers["content-length"])
    except (KeyError, ValueError):
        return None


def _too_large(limit: int) -> TooLarge:
    return TooLarge("body_too_large", f"the request body is larger than {limit} bytes", details={"max_bytes": limit})


def _replay(body: bytes | None, receive: Receive) -> Receive:
    """A ``receive`` that hands over the body already read, then whatever the client sends next."""
    if body is None:
        return receive
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def again() -> Message:
        return pending.pop() if pending else await receive()

    return again


async def _send_error(send: Send, exc: DomainError, *, status: int | None = None) -> None:
    from fastapi.responses import JSONResponse

    response = JSONResponse(exc.payload(), status_code=status or exc.status, headers=exc.headers())
    await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
