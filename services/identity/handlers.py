"""Identity use cases: resolve a batch of channel messages, unmerge, review conflicts."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.trace import SpanKind

from services.identity import domain
from services.identity.domain import Cleaning, Ident, Pseudo
from services.identity.store import ConflictRow, EventRow, IdentityStore, PurchaseRow, RefundRow
from shared import topics
from shared.clock import Clock, iso_utc
from shared.errors import Conflict, NotFound
from shared.events import ChannelEvent, InvalidEvent, PurchaseEvent, RefundEvent, parse_event
from shared.kafka import Outgoing
from shared.messages import CustomerEventResolved, CustomerMerged
from shared.settings import Settings
from shared.storage import DeadLetter, OutboxMessage, is_transient
from shared.tracing import event_attributes, extract_context, inject_headers, tracer

log = logging.getLogger(__name__)
_tracer = tracer(__name__)


@dataclass(frozen=True)
class Incoming:
    """One consumed message and where it came from."""

    value: bytes
    topic: str
    partition: int
    offset: int
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass
class Deps:
    """What the handlers need, passed in: store, pseudonyms, rules, settings, clock."""

    store: IdentityStore
    pseudo: Pseudo
    cleaning: Cleaning
    settings: Settings
    clock: Clock


@dataclass
class BatchOutcome:
    """What a batch did; ``outbox`` holds the messages to publish now that it has committed."""

    processed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    merges: int = 0
    conflicts: int = 0
    outbox: list[OutboxMessage] = field(default_factory=list)


@dataclass(frozen=True)
class _Prepared:
    msg: Incoming
    event: ChannelEvent
    idents: list[Ident]


def prepare(raw: bytes | dict, cleaning: Cleaning) -> tuple[ChannelEvent, list[Ident]]:
    """Validate one event and clean its identifiers, or raise InvalidEvent."""
    event = parse_event(raw)
    return event, domain.clean_identity(event.data.identity, cleaning)


def resolve_batch(messages: list[Incoming], deps: Deps) -> BatchOutcome:
    """Resolve a batch in one transaction; a message that fails alone is dead-lettered alone."""
    outcome = BatchOutcome()
    ready: list[_Prepared] = []
    letters: list[tuple[Incoming, str, str]] = []
    for msg in messages:
        try:
            ready.append(_Prepared(msg, *prepare(msg.value, deps.cleaning)))
        except InvalidEvent as exc:
            letters.append((msg, exc.code, str(exc)))
    try:
        with deps.store.transaction():
            pending = _apply_all(ready, deps, outcome) + _dead_letters(letters, deps, outcome)
            outcome.outbox = deps.store.outbox_add(pending)
        return outcome
    except Exception as exc:
        if is_transient(exc):
            raise
        log.warning("batch failed (%s); isolating its events one by one", type(exc).__name__)
    return _one_by_one(ready, letters, deps)


def _one_by_one(ready: list[_Prepared], letters: list[tuple[Incoming, str, str]], deps: Deps) -> BatchOutcome:
    outcome = BatchOutcome()
    for item in ready:
        try:
            with deps.store.transaction():
                outcome.outbox += deps.store.outbox_add(_apply_all([item], deps, outcome))
        except Exception as exc:
            if is_transient(exc):
                raise
            letters.append((item.msg, "processing_error", f"processing failed: {type(exc).__name__}"))
    with deps.store.transaction():
        outcome.outbox += deps.store.outbox_add(_dead_letters(letters, deps, outcome))
    return outcome


def _apply_all(items: list[_Prepared], deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    out: list[OutboxMessage] = []
    touched: set[str] = set()
    for item in items:
        before = len(out)
        # One span per event, continuing the trace its publisher started.
        with _tracer.start_as_current_span(
            "identity resolve", context=extract_context(item.msg.headers), kind=SpanKind.CONSUMER,
            attributes=event_attributes(item.event, item.msg.topic),
        ) as span:
            _apply(item.event, item.idents, deps, out, outcome, touched)
            if len(out) > before:
                span.set_attribute("crm.customer_id", _customer_of(out[-1]))
        if len(out) == before:
            outcome.duplicates += 1
        else:
            outcome.processed += 1
    at = iso_utc(deps.clock())
    for root in touched:
        deps.store.touch(root, at=at)
    return out


def _customer_of(message: OutboxMessage) -> str:
    return (message.key or b"").decode()


def _apply(
    event: ChannelEvent, idents: list[Ident], deps: Deps, out: list[OutboxMessage], outcome: BatchOutcome,
    touched: set[str],
) -> None:
    store, now = deps.store, iso_utc(deps.clock())
    if store.event_seen(event.source, event.id):
        return
    found = store.find(idents)
    blocked = store.blocked_pairs({f.root_id for f in found.values()})
    res = domain.resolve(idents, found, blocked, deps.pseudo)
    seen_at = iso_utc(event.time)
    if res.create:
        store.create_record(res.create[0], phone=res.create[1], at=now)
    for survivor, merged, cause in res.merges:
        merge_id = "m_" + deps.pseudo("merge", f"{survivor}|{merged}|{event.source}|{event.id}")[:16]
        moved = store.merge(
            survivor, merged, merge_id=merge_id, at=now,
            cause={"source": event.source, "event_id": event.id, "type": event.type, "event_time": seen_at,
                   "identifier_type": cause[0], "identifier": deps.pseudo(*cause)},
        )
        outcome.merges += 1
        body = CustomerMerged(kind="customer.merged", merge_id=merge_id, survivor_id=survivor,
                              merged_id=merged, records=moved, at=deps.clock())
        out.append(_message(deps, topics.CUSTOMER_MERGED, survivor, body.model_dump_json().encode()))
    for conflict in res.conflicts:
        outcome.conflicts += 1
        store.add_conflict(ConflictRow(
            conflict_id="x_" + deps.pseudo("conflict", f"{event.source}|{event.id}|{conflict.identifier}")[:16],
            kind=conflict.kind, identifier_type=conflict.identifier[0],
            identifier_pseudonym=deps.pseudo(*conflict.identifier), customer_ids=conflict.customer_ids,
            source=event.source, event_id=event.id, at=now,
        ))
    if res.links:
        store.link(res.record_id, res.links, source=event.source, event_id=event.id, at=seen_at)
    payload = event.model_dump(mode="json")
    store.add_event(EventRow(event.source, event.id, res.record_id, event.type, event.channel, seen_at,
                             domain.epoch_ms(event.time), domain.dumps(payload), now))
    _facts(event, res.record_id, deps)
    touched.add(res.root_id)
    body = CustomerEventResolved(customer_id=res.root_id, record_id=res.record_id, event=payload,
                                 resolved_at=deps.clock())
    out.append(_message(deps, topics.CUSTOMER_EVENTS, res.root_id, body.model_dump_json().encode()))


def _facts(event: ChannelEvent, record_id: str, deps: Deps) -> None:
    ms = domain.epoch_ms(event.time)
    if isinstance(event, PurchaseEvent):
        d = event.data
        day = domain.local_day(event.time, deps.settings.store_zone(d.store_id)).isoformat()
        deps.store.add_purchase(PurchaseRow(event.source, event.id, record_id, d.order_id,
                                            domain.to_minor(d.amount), d.store_id, ms, day))
    elif isinstance(event, RefundEvent):
        deps.store.add_refund(RefundRow(event.source, event.id, record_id, event.data.order_id,
                                        domain.to_minor(event.data.amount), ms))
    values = domain.attribute_values(event)
    if values:
        deps.store.put_attributes(record_id, values)


def _message(deps: Deps, topic: str, key: str, value: bytes, headers: list | None = None) -> OutboxMessage:
    return OutboxMessage(deps.settings.topic(topic), value, key.encode(), inject_headers(headers))


def _dead_letters(letters: list[tuple[Incoming, str, str]], deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    out = []
    for msg, code, reason in letters:
        letter = dead_letter_for(msg, code, reason, deps.clock, service="identity")
        if deps.store.dead_letter_add(letter):
            outcome.dead_lettered += 1
            out.append(OutboxMessage(deps.settings.topic(topics.DEADLETTER), msg.value, None,
                                     inject_headers(letter.headers)))
    return out


def dead_letter_for(msg: Incoming, code: str, reason: str, clock: Clock, *, service: str) -> DeadLetter:
    """A dead letter: the message unchanged, with reason and origin in headers."""
    fingerprint = hashlib.sha256(msg.topic.encode() + b"\0" + msg.value).hexdigest()
    headers = [h for h in msg.headers if not h[0].startswith("crm.dlq.")] + [
        ("crm.dlq.code", code.encode()),
        ("crm.dlq.reason", reason.encode()),
        ("crm.dlq.topic", msg.topic.encode()),
        ("crm.dlq.partition", str(msg.partition).encode()),
        ("crm.dlq.offset", str(msg.offset).encode()),
        ("crm.dlq.service", service.encode()),
        ("crm.dlq.at", iso_utc(clock()).encode()),
    ]
    return DeadLetter(fingerprint, msg.topic, msg.partition, msg.offset, code, reason, msg.value,
                      headers, iso_utc(clock()))


def unmerge(customer_id: str, merge_id: str, *, by: str, deps: Deps) -> dict[str, Any]:
    """Undo a merge: both customers get back their own identifiers, attributes and history."""
    store = deps.store
    with store.transaction():
        merge = store.merge_row(merge_id)
        if merge is None:
            raise NotFound("merge_not_found", "no such merge")
        if merge.undone_at is not None:
            raise Conflict("merge_already_undone", "this merge was undone already")
        record = store.record(merge.survivor_id)
        if customer_id not in (merge.survivor_id, merge.merged_id, record.root_id if record else None):
            raise NotFound("merge_not_found", "this merge does not belong to that customer")
        moved = store.unmerge(merge_id, by=by, at=iso_utc(deps.clock()))
        body = CustomerMerged(kind="customer.unmerged", merge_id=merge_id, survivor_id=merge.survivor_id,
                              merged_id=merge.merged_id, records=moved, at=deps.clock())
        outbox = store.outbox_add([_message(deps, topics.CUSTOMER_MERGED, merge.survivor_id,
                                            body.model_dump_json().encode())])
    return {"merge_id": merge_id, "survivor_id": merge.survivor_id, "restored_id": merge.merged_id,
            "records": moved, "outbox": outbox}


def close_conflict(conflict_id: str, *, status: str, by: str, note: str | None, deps: Deps) -> None:
    """Mark a conflict reviewed (``dismissed`` or ``resolved``) with who and why."""
    with deps.store.transaction():
        if not deps.store.set_conflict_status(conflict_id, status=status, by=by, note=note):
            raise NotFound("conflict_not_found", "no such conflict")


def ingest(items: list[Any], *, deps: Deps, publish: Callable[[list[Outgoing]], None]) -> list[dict]:
    """Channel ingestion over HTTP: publish the valid events to their channel topics, report each."""
    results: list[dict] = []
    outgoing: list[Outgoing] = []
    for index, item in enumerate(items):
        try:
            event, idents = prepare(item, deps.cleaning)
        except InvalidEvent as exc:
            results.append({"index": index, "status": "rejected", "code": exc.code, "reasons": exc.reasons})
            continue
        topic = deps.settings.topic(topics.CHANNEL_TOPICS[event.channel])
        key = deps.pseudo(*idents[0]).encode()
        outgoing.append(Outgoing(topic, event.model_dump_json().encode(), key))
        results.append({"index": index, "status": "accepted", "id": event.id, "source": event.source,
                        "topic": topic})
    if outgoing:
        publish(outgoing)
    return results


def redrive(letter_id: int, *, deps: Deps, publish: Callable[[list[Outgoing]], None]) -> dict:
    """Send a dead letter back to the topic it came from, unchanged, and mark it redriven."""
    letter = deps.store.dead_letter(letter_id)
    if letter is None:
        raise NotFound("dead_letter_not_found", "no such dead letter")
    if letter.status == "redriven":
        raise Conflict("already_redriven", "this dead letter was redriven already")
    kept = [h for h in letter.headers if not h[0].startswith("crm.dlq.")]
    publish([Outgoing(letter.topic, letter.value, None, kept)])
    deps.store.dead_letter_mark(letter_id, status="redriven", at=iso_utc(deps.clock()))
    return {"id": letter_id, "topic": letter.topic, "status": "redriven"}
