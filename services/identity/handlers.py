"""Identity use cases: resolve a batch of channel messages, unmerge, review conflicts."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.identity import domain
from services.identity.domain import Cleaning, Ident, Pseudo
from services.identity.store import ConflictRow, EventRow, IdentityStore
from shared.clock import Clock, iso_utc
from shared.contract import topics
from shared.contract.events import ChannelEvent, InvalidEvent, check_depth, check_size, parse_event
from shared.contract.facts import (
    FieldValue,
    PurchaseFact,
    RefundFact,
    attribute_values,
    epoch_ms,
    purchase_fact,
    refund_fact,
)
from shared.contract.messages import CustomerMerged, ViewPartUpdated, decode, resolved_event_json
from shared.http.errors import Conflict, NotFound, Unavailable
from shared.observability.trace_context import event_attributes
from shared.settings import Settings
from shared.storage.base import OutboxMessage
from shared.streaming.batch import BatchOutcome, Decoded, Incoming, message_span, process_batch
from shared.streaming.kafka import Outgoing
from shared.streaming.outbox import outbox_message

log = logging.getLogger(__name__)


@dataclass
class Deps:
    """What the handlers need, passed in: store, pseudonyms, rules, settings, clock."""

    store: IdentityStore
    pseudo: Pseudo
    cleaning: Cleaning
    settings: Settings
    clock: Clock


@dataclass(frozen=True)
class Prepared:
    """A channel event that passed validation, with its cleaned identifiers."""

    event: ChannelEvent
    idents: list[Ident]
    payload: str  # the event as validated, JSON: what the timeline keeps and the other services receive


def prepare(raw: bytes | dict, cleaning: Cleaning) -> Prepared:
    """Validate one event and clean its identifiers, or raise InvalidEvent."""
    event = parse_event(raw)
    domain.check_currency(event, cleaning)
    # Serialised here, before the batch takes the store's write lock.
    return Prepared(event, domain.clean_identity(event.data.identity, cleaning), event.model_dump_json())


def resolve_batch(messages: list[Incoming], deps: Deps) -> BatchOutcome:
    """Resolve a batch in one transaction; a message that fails alone is dead-lettered alone."""
    return process_batch(messages, store=deps.store, service="identity", prefix=deps.settings.topic_prefix,
                         clock=deps.clock, decode=lambda msg: prepare(msg.value, deps.cleaning),
                         apply=lambda items, outcome: _apply_all(items, deps, outcome),
                         max_bytes=deps.settings.max_event_bytes)


@dataclass
class _Unit:
    """What a batch writes in bulk once every event is resolved (resolution itself reads as it goes)."""

    seen: set[tuple[str, str]]
    events: list[EventRow] = field(default_factory=list)
    purchases: list[PurchaseFact] = field(default_factory=list)
    refunds: list[RefundFact] = field(default_factory=list)
    attributes: list[tuple[str, list[FieldValue]]] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)

    def flush(self, store: IdentityStore, at: str) -> None:
        store.add_events(self.events)
        store.add_purchases(self.purchases)
        store.add_refunds(self.refunds)
        store.put_attributes(self.attributes)
        for root in self.touched:
            store.touch(root, at=at)


def _apply_all(items: list[Decoded[Prepared]], deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    out: list[OutboxMessage] = []
    unit = _Unit(seen=deps.store.seen([one.item.event.key for one in items]))
    for one in items:
        event = one.item.event
        if event.key in unit.seen:
            outcome.duplicates += 1
            continue
        unit.seen.add(event.key)
        with message_span("identity", one.msg, event_attributes(event)) as span:
            root = _apply(one.item, deps, out, outcome, unit)
            span.set_attribute("crm.customer_id", root)
        outcome.processed += 1
    unit.flush(deps.store, iso_utc(deps.clock()))
    return out


def _apply(prepared: Prepared, deps: Deps, out: list[OutboxMessage], outcome: BatchOutcome, unit: _Unit) -> str:
    event, idents = prepared.event, prepared.idents
    store, now = deps.store, iso_utc(deps.clock())
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
        outcome.counts["merges"] += 1
        body = CustomerMerged(kind="customer.merged", merge_id=merge_id, survivor_id=survivor,
                              merged_id=merged, records=moved, at=deps.clock())
        out.append(outbox_message(deps.settings, topics.CUSTOMER_MERGED, survivor, body))
    for conflict in res.conflicts:
        outcome.counts["conflicts"] += 1
        store.add_conflict(ConflictRow(
            conflict_id="x_" + deps.pseudo("conflict", f"{event.source}|{event.id}|{conflict.identifier}")[:16],
            kind=conflict.kind, identifier_type=conflict.identifier[0],
            identifier_pseudonym=deps.pseudo(*conflict.identifier), customer_ids=conflict.customer_ids,
            source=event.source, event_id=event.id, at=now,
        ))
    if res.links:
        store.link(res.record_id, res.links, source=event.source, event_id=event.id, at=seen_at)
    unit.events.append(EventRow(event.source, event.id, res.record_id, event.type, event.channel, seen_at,
                                epoch_ms(event.time), prepared.payload, now))
    if purchase := purchase_fact(event, res.record_id, deps.settings.store_zone):
        unit.purchases.append(purchase)
    elif refund := refund_fact(event, res.record_id):
        unit.refunds.append(refund)
    if values := attribute_values(event):
        unit.attributes.append((res.record_id, values))
    unit.touched.add(res.root_id)
    body = resolved_event_json(customer_id=res.root_id, record_id=res.record_id, event_json=prepared.payload,
                               resolved_at=deps.clock())
    out.append(outbox_message(deps.settings, topics.CUSTOMER_EVENTS, res.root_id, body))
    return res.root_id


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
        outbox = store.outbox_add([outbox_message(deps.settings, topics.CUSTOMER_MERGED, merge.survivor_id, body)])
    return {"merge_id": merge_id, "survivor_id": merge.survivor_id, "restored_id": merge.merged_id,
            "records": moved, "outbox": outbox}


def close_conflict(conflict_id: str, *, status: str, by: str, note: str | None, deps: Deps) -> None:
    """Mark a conflict reviewed (``dismissed`` or ``resolved``) with who and why."""
    with deps.store.transaction():
        if not deps.store.set_conflict_status(conflict_id, status=status, by=by, note=note):
            raise NotFound("conflict_not_found", "no such conflict")


class PublishUnavailable(Unavailable):
    """The broker did not acknowledge the batch's events in time: none of them counts as accepted."""

    retry_after_s = 5


def ingest(items: list[Any], *, deps: Deps, publish: Callable[[list[Outgoing]], None]) -> list[dict]:
    """Channel ingestion over HTTP: publish the valid events to their channel topics, report each.

    Every item goes through the checks a consumer makes of a message (size, nesting, decoding), so
    what is accepted here is never dead-lettered there for its shape. Raises PublishUnavailable when
    the broker does not acknowledge: the caller then has no accepted event and sends the batch again
    (the consumer ignores what it sees twice).
    """
    results: list[dict] = []
    outgoing: list[Outgoing] = []
    limit = deps.settings.max_event_bytes
    for index, item in enumerate(items):
        try:
            prepared = prepare(_as_message(item, limit), deps.cleaning)
            payload = prepared.payload.encode()
            check_size(payload, limit)  # what is published, defaults filled in, must fit as well
        except InvalidEvent as exc:
            results.append({"index": index, "status": "rejected", "code": exc.code, "reasons": exc.reasons})
            continue
        event = prepared.event
        topic = deps.settings.topic(topics.CHANNEL_TOPICS[event.channel])
        # The key spreads a customer's events over partitions without naming the customer.
        key = deps.pseudo(*prepared.idents[0]).encode()
        outgoing.append(Outgoing(topic, payload, key))
        results.append({"index": index, "status": "accepted", "id": event.id, "source": event.source,
                        "topic": topic})
    if outgoing:
        try:
            publish(outgoing)
        except Exception as exc:
            log.warning("ingestion: publishing %d events failed (%s)", len(outgoing), type(exc).__name__)
            raise PublishUnavailable("publish_unavailable", "the broker did not acknowledge the events; "
                                     "none was accepted, send the batch again later") from exc
    return results


def _as_message(item: Any, max_bytes: int) -> bytes:
    """One posted event as the bytes a channel would publish, or InvalidEvent."""
    if not isinstance(item, dict):
        raise InvalidEvent("invalid_event", ["event: must be a JSON object"])
    check_depth(item)
    try:
        raw = json.dumps(item, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:
        raise InvalidEvent("invalid_json", ["event: a string holds a lone surrogate, which is not valid UTF-8"]) \
            from None
    except ValueError:
        raise InvalidEvent("invalid_json", ["event: NaN and Infinity are not JSON numbers"]) from None
    check_size(raw, max_bytes)
    return raw


def hold_parts(messages: list[Incoming], deps: Deps) -> BatchOutcome:
    """Keep the newest part of each customer's view that loyalty, alerts and campaigns publish."""
    return process_batch(messages, store=deps.store, service="identity", prefix=deps.settings.topic_prefix,
                         clock=deps.clock, decode=lambda msg: decode(msg.value),
                         apply=lambda items, outcome: _hold_parts(items, deps, outcome))


def _hold_parts(items: list[Decoded], deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    for one in items:
        if not isinstance(one.item, ViewPartUpdated):
            outcome.counts["ignored"] += 1  # other kinds on those topics are for other services
            continue
        part = one.item
        with message_span("identity", one.msg, {"crm.customer_id": part.customer_id, "crm.view.part": part.part}):
            deps.store.put_part(part.customer_id, part.part, part.value.model_dump(mode="json", exclude_unset=True),
                                version=part.version)
        outcome.processed += 1
    return []
