"""Consuming identity's and loyalty's events: facts per record, the record → customer mapping, tiers.

Every message gets a decided fate through ``process_batch``: applied (once in effect: facts are
keyed by their event, memberships are last-writer-wins), a duplicate, ignored (a kind campaigns
does not read), or dead-lettered. A batch is read message by message and written at once, a few
bulk statements whatever its size. Customers whose campaigns or conversions changed get their part
of the single customer view republished in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.campaigns.handlers.common import Deps, refresh_views
from services.campaigns.store import kept
from shared.contract.events import ChannelEvent
from shared.contract.facts import attribute_values, purchase_fact, refund_fact
from shared.contract.messages import CustomerEventResolved, CustomerMerged, Read, ViewPartUpdated, read
from shared.observability.trace_context import event_attributes
from shared.storage.base import OutboxMessage
from shared.storage.membership import Membership, memberships_of
from shared.streaming.batch import BatchOutcome, Decoded, Incoming, message_span, process_batch


def consume_batch(messages: list[Incoming], *, deps: Deps) -> BatchOutcome:
    """Apply a batch of identity and loyalty messages in one transaction."""
    return process_batch(messages, store=deps.store, service="campaigns", prefix=deps.settings.topic_prefix,
                         clock=deps.clock, decode=lambda msg: read(msg.value),
                         apply=lambda items, outcome: _apply(items, deps, outcome))


@dataclass
class _Unit:
    """What a batch writes in bulk once every message is read."""

    memberships: list[Membership] = field(default_factory=list)
    events: list[ChannelEvent] = field(default_factory=list)
    records: list[str] = field(default_factory=list)  # the record of each event
    tiers: list[tuple[str, str | None, str]] = field(default_factory=list)


def _apply(items: list[Decoded[Read]], deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    unit = _Unit()
    for one in items:
        message, event = one.item.message, one.item.event
        if isinstance(message, CustomerEventResolved) and event is not None:
            attrs = {**event_attributes(event), "crm.customer_id": message.customer_id}
            with message_span("campaigns", one.msg, attrs):
                unit.memberships += memberships_of(message)
                unit.events.append(event)
                unit.records.append(message.record_id)
        elif isinstance(message, CustomerMerged):
            with message_span("campaigns", one.msg, {"crm.customer_id": message.survivor_id,
                                                     "crm.merge_id": message.merge_id}):
                unit.memberships += memberships_of(message)
            outcome.processed += 1
        elif isinstance(message, ViewPartUpdated) and message.part == "loyalty":
            with message_span("campaigns", one.msg, {"crm.customer_id": message.customer_id}):
                tier = message.value.get("tier")
                unit.tiers.append((message.customer_id, None if tier is None else str(tier), message.version))
            outcome.processed += 1
        else:
            outcome.counts["ignored"] += 1  # other services' kinds on the topics campaigns reads
    return _write(unit, deps, outcome)


def _write(unit: _Unit, deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    """Write what a batch says, a few statements for the whole batch; republish the changed view parts."""
    store = deps.store
    affected = store.apply_memberships(unit.memberships)
    fresh = store.seen_first([(e.source, e.id) for e in unit.events])
    purchases, refunds, attributes = [], [], []
    for event, record_id in zip(unit.events, unit.records, strict=True):
        if (event.source, event.id) not in fresh:
            outcome.duplicates += 1
            continue
        fresh.discard((event.source, event.id))  # the same event twice in one batch counts once
        outcome.processed += 1
        if purchase := purchase_fact(event, record_id, deps.settings.store_zone):
            purchases.append(purchase)
        elif refund := refund_fact(event, record_id):
            refunds.append(refund)
        elif values := [v for v in attribute_values(event) if kept(v.field)]:
            attributes.append((record_id, values))
    store.add_purchases(purchases)
    store.add_refunds(refunds)
    store.put_attributes(attributes)
    store.put_tiers(unit.tiers)
    # A purchase or refund changes its customer's conversions: their part of the view is recomputed.
    affected |= set(store.current_customers({f.record_id for f in [*purchases, *refunds]}).values())
    return refresh_views(affected, deps=deps)
