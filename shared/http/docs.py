"""Every status a route can answer, in its OpenAPI document, declared once for all services.

The statuses that come from the platform rather than from one route (auth, validation, rate limit, body
limits, unavailability) and those that follow from a route's shape (a path id that may not exist, a body,
a change of state that may conflict) are added here to every ``/v1`` operation; a route declares only
what is particular to it, with ``responses=errors(409)``. Every error answer references one ``Error``
schema, the format ``shared.errors.DomainError.payload`` writes.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "machine-readable, stable (e.g. invalid_json)"},
                "message": {"type": "string", "description": "for people; never carries personal data"},
                "details": {"description": "what was wrong where, when the code alone does not say"},
            },
        }
    },
}

DESCRIPTIONS: dict[int, str] = {
    401: "No `Authorization: Bearer <key or token>`, a key that is not known, or a staff token that expired "
         "(`token_expired`) or is not valid (`invalid_token`); checked before the body is read",
    403: "The key's role does not allow this (checked before the body is read)",
    404: "Nothing with that id (or no such route)",
    409: "The request conflicts with the current state (already done, wrong state, key reused)",
    413: "The request body is larger than the limit (CRM_MAX_BODY_BYTES); the connection may be closed",
    415: "The body is not JSON: send `Content-Type: application/json`",
    422: "A parameter or the body is not valid (`invalid_request`), or the body is not JSON (`invalid_json`)",
    429: "Too many requests for this key: try again after `Retry-After` seconds",
    500: "Something went wrong on our side",
    503: "The service cannot do this now (store or broker unavailable): try again after `Retry-After` seconds",
}

RETRY_AFTER: dict[str, Any] = {
    "Retry-After": {"description": "seconds to wait before trying again", "required": True,
                    "schema": {"type": "integer", "minimum": 0}}
}
EVERY_OPERATION = (401, 403, 422, 429, 503)
STATE_CHANGES = {"post", "put", "patch", "delete"}
METHODS = STATE_CHANGES | {"get", "head", "options", "trace"}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that can answer a status its shape does not imply (``errors(404)``)."""
    return {status: {"description": DESCRIPTIONS[status]} for status in statuses}


def statuses_of(path: str, method: str, operation: dict[str, Any], prefix: str) -> set[int]:
    """The error statuses every operation of this shape can answer."""
    if not path.startswith(prefix + "/"):
        return set()
    found = set(EVERY_OPERATION)
    if "{" in path:
        found.add(404)
    if "requestBody" in operation:
        found |= {413, 415}
    if method in STATE_CHANGES:
        found.add(409)
    return found


def document_errors(schema: dict[str, Any], *, prefix: str = "/v1") -> dict[str, Any]:
    """``schema`` with every operation's error statuses declared, each answering an ``Error``."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for status in statuses_of(path, method, operation, prefix):
                responses.setdefault(str(status), {})
            for code, response in responses.items():
                if code[:1] in ("4", "5"):
                    _as_error(int(code), response)
    # FastAPI's own validation answer ({"detail": [...]}) is never sent: our 422 is an Error.
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    return schema


def _as_error(status: int, response: dict[str, Any]) -> None:
    if response.get("description") in (None, "Validation Error"):
        response["description"] = DESCRIPTIONS.get(status, "Error")
    content = response.get("content", {}).get("application/json", {})
    own = content.get("schema")
    if own is None or own.get("$ref", "").endswith("/HTTPValidationError") or own == _ERROR_REF:
        schema = _ERROR_REF
    else:
        # A route that answers this status with a body of its own (a batch's per-item results) may still
        # answer it with an Error from the platform (validation, the gate).
        schema = {"anyOf": [own, _ERROR_REF]}
    response["content"] = {"application/json": {"schema": schema}}
    if status in (429, 503):
        response["headers"] = {**response.get("headers", {}), **RETRY_AFTER}


def install_openapi(app: FastAPI, *, prefix: str = "/v1") -> None:
    """Make ``app.openapi()`` (and ``/openapi.json``) return the document with errors declared."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, openapi_version=app.openapi_version,
                                 description=app.description, routes=app.routes)
            app.openapi_schema = document_errors(schema, prefix=prefix)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
