"""Dead letters through each service's API: list them with reason and origin, re-drive one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel

from shared.access.audit import auditor
from shared.access.http import Reason, Reveal, check_reveal
from shared.access.visibility import Seeing
from shared.clock import iso_utc
from shared.http.api import Caller, caller_dep
from shared.http.bounds import MAX_ROW_ID, Offset
from shared.http.errors import Conflict, NotFound, Unavailable
from shared.streaming.kafka import Outgoing


class DeadLetterRead(BaseModel):
    id: int
    topic: str
    partition: int
    offset: int
    code: str
    reason: str
    at: str
    status: str
    redriven_at: str | None
    payload: str | None = None


class DeadLettersPage(BaseModel):
    items: list[DeadLetterRead]
    total: int
    offset: int
    limit: int


class RedriveRead(BaseModel):
    id: int
    topic: str
    status: str


def redrive(letter_id: int, *, store, publish, clock) -> RedriveRead:
    """Send a dead letter back to the topic it came from, unchanged, and mark it redriven."""
    letter = store.dead_letter(letter_id)
    if letter is None:
        raise NotFound("dead_letter_not_found", "no such dead letter")
    if letter.status == "redriven":
        raise Conflict("already_redriven", "this dead letter was redriven already")
    kept = [h for h in letter.headers if not h[0].startswith("crm.dlq.")]
    try:
        publish([Outgoing(letter.topic, letter.value, None, kept)])
    except Exception as exc:
        from kafka.errors import KafkaError

        from shared.streaming.consumer import is_permanent_publish_error

        if is_permanent_publish_error(exc):
            raise Conflict("cannot_redrive", f"the broker refuses this message for good ({type(exc).__name__}): "
                           "it cannot be redriven as it is") from None
        if isinstance(exc, KafkaError | TimeoutError):
            raise Unavailable("broker_unavailable", "the broker did not acknowledge the message; try again") from None
        raise
    store.dead_letter_mark(letter_id, status="redriven", at=iso_utc(clock()))
    return RedriveRead(id=letter_id, topic=letter.topic, status="redriven")


def router() -> APIRouter:
    """``GET /v1/deadletters`` and ``POST /v1/deadletters/{id}/redrive`` for the service in ``app.state``."""
    r = APIRouter(tags=["operations"])

    @r.get("/deadletters", response_model=DeadLettersPage)
    def get_dead_letters(request: Request, seeing: Seeing, caller: Caller = caller_dep("operator"),
                         status: str | None = None, offset: Offset = 0, limit: int = Query(50, ge=1, le=500),
                         reveal: bool = Reveal, reason: str | None = Reason) -> DeadLettersPage:
        """Messages this service could not process, with reason and origin; their raw payloads (personal data
        in clear) only to an admin who asks ``reveal=true``, recorded in the audit log.

        A dead letter is a message that could not be read, so whose customer (and owning store) it is
        cannot be told: a store- or region-scoped key sees none (issue 12)."""
        if not seeing.company_wide:
            return DeadLettersPage(items=[], total=0, offset=offset, limit=limit)
        service = request.app.state.service
        store = service.store
        letters = store.dead_letters(status=status, offset=offset, limit=limit)
        if check_reveal(caller, reveal) and letters:
            auditor(service.name, service)(caller, action="reveal.deadletters", reason=reason,
                                           target=",".join(str(d.id) for d in letters)[:200])
        items = [
            DeadLetterRead(id=d.id, topic=d.topic, partition=d.partition, offset=d.offset, code=d.code,
                           reason=d.reason, at=d.at, status=d.status, redriven_at=d.redriven_at,
                           payload=d.value.decode("utf-8", "replace") if reveal else None)
            for d in letters
        ]
        return DeadLettersPage(items=items, total=store.dead_letter_count(status=status), offset=offset, limit=limit)

    @r.post("/deadletters/{letter_id}/redrive", response_model=RedriveRead)
    def post_redrive(request: Request, letter_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)], seeing: Seeing,
                     caller: Caller = caller_dep("operator"), reason: str | None = Reason) -> RedriveRead:
        """Send a dead letter back to its topic (after the cause is fixed)."""
        if not seeing.company_wide:
            raise NotFound("dead_letter_not_found", "no such dead letter")  # none is visible to a scoped key
        svc = request.app.state.service
        done = redrive(letter_id, store=svc.store, publish=svc.publish, clock=svc.clock)
        auditor(svc.name, svc)(caller, action="deadletters.redrive", target=str(letter_id), reason=reason)
        return done

    return r
