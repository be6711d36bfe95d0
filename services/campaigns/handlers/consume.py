"""Consuming identity's and loyalty's events: facts per record, the record → customer mapping, tiers.

Every message gets a decided fate through ``process_batch``: applied (once in effect: facts are
keyed by their event, memberships are last-writer-wins), a duplicate, ignored (a kind campaigns
does not read), or dead-lettered. Customers whose campaigns or conversions changed get their part
of the single customer view republished in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.campaigns.handlers.common import Deps, refresh_views
from services.campaigns.store import kept
from shared.batch import BatchOutcome, Decoded, Incoming, message_span, process_batch
from shared.events import ChannelEvent, parse_event
from shared.facts import attribute_values, purchase_fact, refund_fact
from shared.membership import memberships_of
from shared.messages import CustomerEventResolved, CustomerMerged, ViewPartUpdated, decode
from shared.storage import OutboxMessage
from shared.tracing import event_attributes


@dataclass(frozen=True)
class Consumed:
    """A decoded message (None for a kind this service does not know) and, for a customer event,
    the channel event it carries."""

    message: Any
    event: ChannelEvent | None = None


def decode_message(msg: Incoming) -> Consumed:
    """Decode one message; raises InvalidEvent (a dead letter) for one that can never be read."""
    message = decode(msg.value)
    if isinstance(message, CustomerEventResolved):
        return Consumed(message, parse_event(message.event))
    return Consumed(message)


def consume_batch(messages: list[Incoming], deps: Deps) -> BatchOutcome:
    """Apply a batch of identity and loyalty messages in one transaction."""
    return process_batch(messages, store=deps.store, service="campaigns", prefix=deps.settings.topic_prefix,
                         clock=deps.clock, decode=decode_message,
                         apply=lambda items, outcome: _apply(items, deps, outcome))


def _apply(items: list[Decoded[Consumed]], deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    store = deps.store
    affected: set[str] = set()
    for one in items:
        message, event = one.item.message, one.item.event
        if isinstance(message, CustomerEventResolved) and event is not None:
            attrs = {**event_attributes(event), "crm.customer_id": message.customer_id}
            with message_span("campaigns", one.msg, attrs):
                affected |= store.apply_memberships(memberships_of(message))
                if not store.mark_seen(event.source, event.id):
                    outcome.duplicates += 1
                    continue
                if _facts(event, message.record_id, deps):
                    affected.add(store.customer_of(message.record_id))
            outcome.processed += 1
        elif isinstance(message, CustomerMerged):
            with message_span("campaigns", one.msg, {"crm.customer_id": message.survivor_id,
                                                     "crm.merge_id": message.merge_id}):
                affected |= store.apply_memberships(memberships_of(message))
            outcome.processed += 1
        elif isinstance(message, ViewPartUpdated) and message.part == "loyalty":
            with message_span("campaigns", one.msg, {"crm.customer_id": message.customer_id}):
                tier = message.value.get("tier")
                store.put_tier(message.customer_id, None if tier is None else str(tier), version=message.version)
            outcome.processed += 1
        else:
            outcome.counts["ignored"] += 1  # other services' kinds on the topics campaigns reads
    return refresh_views(affected, deps=deps)


def _facts(event: ChannelEvent, record_id: str, deps: Deps) -> bool:
    """Keep what campaigns reads off an event; True when a purchase or refund was added."""
    store = deps.store
    if purchase := purchase_fact(event, record_id, deps.settings.store_zone):
        return store.add_purchase(purchase)
    if refund := refund_fact(event, record_id):
        return store.add_refund(refund)
    values = [v for v in attribute_values(event) if kept(v.field)]
    if values:
        store.put_attributes(record_id, values)
    return False
