"""Identity's HTTP routes: ingestion, lookup, the single customer view, timeline, merges, conflicts."""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from services.identity import handlers, views
from services.identity.domain import clean_identity
from services.identity.schemas import (
    ConflictRead,
    ConflictsPage,
    ConflictUpdate,
    CustomerRead,
    IngestRead,
    MergeRead,
    MergesPage,
    TimelinePage,
    UnmergeCreate,
    UnmergeRead,
)
from shared.contract.events import IDENTIFIER_TYPES, Identity, InvalidEvent
from shared.http.api import Caller, caller_dep, errors
from shared.http.bounds import MAX_ID, Cursor, Offset
from shared.http.errors import DomainError, InvalidInput, NotFound

MAX_BATCH = 1000


class UnsupportedMediaType(DomainError):
    status = 415


_EVENT = {"type": "object", "description": "a CloudEvent 1.0 in structured mode (see the README)"}
_EVENTS_BODY = {"required": True, "content": {"application/json": {"schema": {"anyOf": [
    _EVENT, {"type": "array", "items": _EVENT, "minItems": 1, "maxItems": MAX_BATCH}]}}}}
# 401/403/413/415/429 and the Error schema are declared for every route in shared/http/docs.py.
_INGEST_RESPONSES: dict[int | str, dict[str, Any]] = {
    207: {"description": "some events accepted, the others rejected with their index and reasons",
          "model": IngestRead},
    422: {"description": "no event accepted (each rejected with its index and reasons), or a body that "
                         "is not JSON, or an empty or too large batch", "model": IngestRead},
    503: {"description": "the broker did not acknowledge the events in time, or too many batches are in "
                         "flight; none was accepted: send the batch again after Retry-After seconds"},
}


def _body_items(raw: bytes) -> list[Any]:
    """The posted events; a body that is not JSON at all is one error, a bad event is judged alone."""
    try:
        body = json.loads(raw)
    except RecursionError:
        raise InvalidInput("invalid_request", "the body nests too deeply to be read") from None
    except ValueError:
        raise InvalidInput("invalid_request", "the body is not valid JSON") from None
    items = body if isinstance(body, list) else [body]
    if not items:
        raise InvalidInput("empty_batch", "send at least one event")
    if len(items) > MAX_BATCH:
        raise InvalidInput("batch_too_large", f"send at most {MAX_BATCH} events per request")
    return items


def _ident(name: str):
    # As long as an event may carry it: a longer one cannot be anyone's, and the model would refuse it with a 500.
    bound = next(m.max_length for m in Identity.model_fields[name].metadata if hasattr(m, "max_length"))
    return Query(None, max_length=bound)


def router() -> APIRouter:
    """The identity routes; handlers and store come from ``request.app.state.service``."""
    r = APIRouter()

    @r.post("/events", response_model=IngestRead, status_code=202, tags=["ingestion"],
            responses=_INGEST_RESPONSES, openapi_extra={"requestBody": _EVENTS_BODY})
    async def post_events(request: Request, caller: Caller = caller_dep("operator")) -> JSONResponse:
        """Publish channel events to their topics; each is accepted or rejected with reasons.

        The body is read here, not by FastAPI, so that the key is checked first and one event that
        cannot be read (a lone surrogate, deep nesting, a huge field) is rejected alone.
        """
        svc = request.app.state.service
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
            raise UnsupportedMediaType("unsupported_media_type", "send the events as application/json")
        items = _body_items(await request.body())
        try:
            results = await run_in_threadpool(handlers.ingest, items, deps=svc.deps, publish=svc.publish)
        except handlers.PublishUnavailable as exc:
            svc.runner.note_failure("ingest", exc.__cause__ or exc)
            return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=503,
                                headers={"Retry-After": str(exc.retry_after_s)})
        accepted = sum(1 for x in results if x["status"] == "accepted")
        if accepted:
            svc.runner.note_success("ingest")
        status = 202 if accepted == len(results) else (207 if accepted else 422)
        page = IngestRead(accepted=accepted, rejected=len(results) - accepted, results=results)
        return JSONResponse(page.model_dump(exclude_none=True), status_code=status)

    @r.get("/customers/lookup", response_model=CustomerRead, tags=["customers"], responses=errors(404))
    def lookup(request: Request, caller: Caller = caller_dep("reader"), phone: str | None = _ident("phone"),
               wechat_openid: str | None = _ident("wechat_openid"),
               wechat_unionid: str | None = _ident("wechat_unionid"),
               member_id: str | None = _ident("member_id"), web_user_id: str | None = _ident("web_user_id"),
               email: str | None = _ident("email"), anonymous_id: str | None = _ident("anonymous_id")) -> CustomerRead:
        """The customer owning an identifier (a phone in any notation, or any other identifier)."""
        svc = request.app.state.service
        given = {k: v for k, v in dict(phone=phone, wechat_openid=wechat_openid, wechat_unionid=wechat_unionid,
                 member_id=member_id, web_user_id=web_user_id, email=email, anonymous_id=anonymous_id).items() if v}
        if len(given) != 1:
            raise InvalidInput("one_identifier", f"give exactly one of {', '.join(IDENTIFIER_TYPES)}")
        try:
            idents = clean_identity(Identity(**given), svc.deps.cleaning)
        except InvalidEvent as exc:
            raise InvalidInput(exc.code, "; ".join(exc.reasons)) from None
        found = svc.deps.store.find(idents)
        if not found:
            raise NotFound("customer_not_found", "no customer has that identifier")
        return _view(request, next(iter(found.values())).root_id, caller)

    @r.get("/customers/{customer_id}", response_model=CustomerRead, tags=["customers"])
    def get_customer(request: Request, customer_id: str, caller: Caller = caller_dep("reader")) -> CustomerRead:
        """The single customer view; a merged-away id answers with the customer it is part of."""
        return _view(request, customer_id, caller)

    @r.get("/customers/{customer_id}/timeline", response_model=TimelinePage, tags=["customers"])
    def get_timeline(request: Request, customer_id: str, caller: Caller = caller_dep("reader"),
                     cursor: Cursor = None, limit: int = Query(50, ge=1, le=500)) -> TimelinePage:
        """The customer's events across channels, newest first."""
        svc = request.app.state.service
        return views.timeline(svc.deps.store, customer_id, cursor=cursor, limit=limit,
                              reveal=caller.at_least("admin"))

    @r.get("/customers/{customer_id}/merges", response_model=MergesPage, tags=["merges"])
    def get_merges(request: Request, customer_id: str, caller: Caller = caller_dep("reader")) -> MergesPage:
        """Every merge that made this customer, with what caused it."""
        store = request.app.state.service.deps.store
        root = views.active_record(store, customer_id)
        rows = store.merges(store.group(root.id) + [customer_id])
        return MergesPage(customer_id=root.id, items=[MergeRead(**vars(m)) for m in rows])

    @r.post("/customers/{customer_id}/unmerge", response_model=UnmergeRead, tags=["merges"])
    def post_unmerge(request: Request, customer_id: str, body: UnmergeCreate,
                     caller: Caller = caller_dep("operator")) -> UnmergeRead:
        """Undo a merge; both customers get back exactly what was theirs."""
        svc = request.app.state.service
        done = handlers.unmerge(customer_id, body.merge_id, by=caller.key_id, deps=svc.deps)
        svc.relay(done.pop("outbox"))
        return UnmergeRead(**done)

    @r.get("/identity/conflicts", response_model=ConflictsPage, tags=["merges"])
    def get_conflicts(request: Request, caller: Caller = caller_dep("reader"),
                      status: str | None = Query("open", max_length=MAX_ID),
                      customer_id: str | None = Query(None, max_length=MAX_ID), offset: Offset = 0,
                      limit: int = Query(50, ge=1, le=500)) -> ConflictsPage:
        """Events that would have joined two phone customers, for review."""
        store = request.app.state.service.deps.store
        rows = store.conflicts(status=status or None, customer_id=customer_id, offset=offset, limit=limit)
        items = [ConflictRead(**{**vars(c), "customer_ids": list(c.customer_ids)}) for c in rows]
        return ConflictsPage(items=items, offset=offset, limit=limit)

    @r.post("/identity/conflicts/{conflict_id}", status_code=204, tags=["merges"])
    def post_conflict(request: Request, conflict_id: str, body: ConflictUpdate,
                      caller: Caller = caller_dep("operator")) -> None:
        """Close a conflict as dismissed or resolved, with a note."""
        handlers.close_conflict(conflict_id, status=body.status, by=caller.key_id, note=body.note,
                                deps=request.app.state.service.deps)

    @r.get("/identity/summary", tags=["operations"])
    def get_summary(request: Request, caller: Caller = caller_dep("reader")) -> dict:
        """Counts ops watch: active customers, dead letters, open conflicts."""
        store = request.app.state.service.deps.store
        return {
            "customers": store.customer_count(),
            "dead_letters": store.dead_letter_count(),
            "open_conflicts": len(store.conflicts(status="open", customer_id=None, offset=0, limit=10_000)),
        }

    return r


def _view(request: Request, customer_id: str, caller: Caller) -> CustomerRead:
    svc = request.app.state.service
    return views.customer_view(svc.deps.store, customer_id, reveal=caller.at_least("admin"),
                               zone=ZoneInfo(svc.settings.timezone))
