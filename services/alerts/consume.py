"""Consumption: identity's and loyalty's messages folded into the facts the rules read, in bulk.

A batch is read first (what each message tells, whether it is new), then kept with a few bulk store
calls, whatever the store (on MongoDB a call per message is a round trip per document); the customers
its new facts concern are then evaluated once each, after the merges and unmerges in it are applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.alerts.handlers import Deps, Writer
from services.alerts.store import ExpiryRow, LoyaltyRow, OccurrenceRow
from shared.contract.events import ComplaintEvent, SurveyEvent
from shared.contract.facts import (
    FieldValue,
    PurchaseFact,
    RefundFact,
    attribute_values,
    epoch_ms,
    purchase_fact,
    refund_fact,
)
from shared.contract.messages import (
    CustomerEventResolved,
    CustomerMerged,
    PointsExpired,
    PointsExpiryAnnounced,
    Read,
    TierChanged,
    ViewPartUpdated,
    read,
)
from shared.storage.base import OutboxMessage
from shared.storage.membership import memberships_of
from shared.streaming.batch import BatchOutcome, Decoded, Incoming, message_span, process_batch

# The profile fields the rules read (``attributes.account_manager`` comes from ``crm.profile`` attributes).
FIELDS = ("birthday", "attributes.account_manager")


def consume_batch(messages: list[Incoming], *, deps: Deps) -> BatchOutcome:
    """Fold a batch of identity and loyalty messages in and evaluate the customers they touch."""
    return process_batch(messages, store=deps.store, service="alerts", prefix=deps.settings.topic_prefix,
                         clock=deps.clock, decode=lambda msg: read(msg.value),
                         apply=lambda items, outcome: _apply(items, deps, outcome))


@dataclass
class _Facts:
    """What a batch's messages tell, to be kept in bulk; ``claims`` ties each keyed fact to its message."""

    events: list[tuple[str, str]] = field(default_factory=list)
    purchases: list[PurchaseFact] = field(default_factory=list)
    refunds: list[RefundFact] = field(default_factory=list)
    occurrences: list[OccurrenceRow] = field(default_factory=list)
    expiries: list[ExpiryRow] = field(default_factory=list)
    attributes: list[tuple[str, list[FieldValue]]] = field(default_factory=list)
    loyalty: list[LoyaltyRow] = field(default_factory=list)
    claims: list[tuple[str, str, str]] = field(default_factory=list)  # (what, key, record)


IGNORED = "-"  # what _read returns for a message that tells alerts nothing


def _read(item: Read, facts: _Facts, seen: set[tuple[str, str]], deps: Deps) -> str | None:
    """Note what one message tells; returns the record it concerns when it is new for sure ("" when that
    depends on what the store holds: a claim), None for a duplicate, IGNORED when it tells alerts nothing."""
    m = item.message
    if isinstance(m, CustomerEventResolved):
        event, record = item.event, m.record_id
        if event.key in seen:
            return None
        told = _event_facts(event, record, facts, deps)
        if not told:
            # A page view, a follow, a city: kept nowhere and evaluated for no one (its mapping still counts).
            return IGNORED
        seen.add(event.key)
        facts.events.append(event.key)
        return record
    if isinstance(m, CustomerMerged):
        return m.survivor_id  # the membership rows carry it
    if isinstance(m, PointsExpiryAnnounced):
        row = ExpiryRow(f"expiry|{m.announcement_id}", m.customer_id, m.points, epoch_ms(m.expires_at))
        facts.expiries.append(row)
        facts.claims.append(("expiry", row.key, m.customer_id))
        return ""
    occurrence = None
    if isinstance(m, PointsExpired):
        occurrence = OccurrenceRow("expired", f"expired|{m.entry_id}", m.customer_id, epoch_ms(m.at), None, m.points)
    elif isinstance(m, TierChanged):
        # The new tier's benefits come with it: the moment is for presenting them to the customer.
        occurrence = OccurrenceRow("upgrade", f"upgrade|{m.change_id}", m.customer_id, epoch_ms(m.at), None,
                                   {"tier": m.tier, "benefits": m.benefits})
    if occurrence is not None:
        facts.occurrences.append(occurrence)
        facts.claims.append(("occurrence", occurrence.key, m.customer_id))
        return ""
    balance = m.value.get("points_balance")
    facts.loyalty.append(LoyaltyRow(m.customer_id, m.value.get("tier"), int(balance) if balance is not None else None,
                                    m.version))
    facts.claims.append(("loyalty", f"{m.customer_id}\0{m.version}", m.customer_id))
    return ""


def _event_facts(event: Any, record: str, facts: _Facts, deps: Deps) -> bool:
    """Note the facts a channel event gives the rules; False when it gives none."""
    before = (len(facts.purchases), len(facts.refunds), len(facts.occurrences), len(facts.attributes))
    if purchase := purchase_fact(event, record, deps.settings.store_zone):
        facts.purchases.append(purchase)
    elif refund := refund_fact(event, record):
        facts.refunds.append(refund)
    elif isinstance(event, ComplaintEvent):
        facts.occurrences.append(OccurrenceRow("complaint", f"complaint|{event.source}|{event.id}", record,
                                               epoch_ms(event.time), event.data.store_id))
    elif isinstance(event, SurveyEvent):
        facts.occurrences.append(OccurrenceRow("survey", f"survey|{event.source}|{event.id}", record,
                                               epoch_ms(event.time), None, event.data.score))
    if values := [v for v in attribute_values(event) if v.field in FIELDS]:
        facts.attributes.append((record, values))
    return before != (len(facts.purchases), len(facts.refunds), len(facts.occurrences), len(facts.attributes))


def _relevant(message: Any) -> bool:
    """Whether alerts reads this message (other kinds on these topics are for other services)."""
    if isinstance(message, ViewPartUpdated):
        return message.part == "loyalty"
    if isinstance(message, TierChanged):
        return message.direction == "upgrade"  # a downgrade's tier comes with loyalty's part
    return isinstance(message, CustomerEventResolved | CustomerMerged | PointsExpiryAnnounced | PointsExpired)


def _apply(items: list[Decoded[Read]], deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    store = deps.store
    relevant = [one for one in items if _relevant(one.item.message)]
    outcome.counts["ignored"] += len(items) - len(relevant)
    seen = store.seen_events([one.item.event.key for one in relevant if one.item.event is not None])
    facts, records, rows = _Facts(), set(), []
    # Customers a merge or unmerge joined or split: their view parts are republished even when their alerts
    # did not change (a brand-new record also changes the mapping, but there is nothing to announce).
    regrouped: set[str] = set()
    for one in relevant:
        message = one.item.message
        with message_span("alerts", one.msg, {"crm.message.kind": message.kind}):
            if isinstance(message, CustomerEventResolved | CustomerMerged):
                rows += memberships_of(message)
            if isinstance(message, CustomerMerged):
                regrouped |= {message.survivor_id, message.merged_id}
            record = _read(one.item, facts, seen, deps)
        if record == IGNORED:
            outcome.counts["ignored"] += 1
        elif record:
            outcome.processed += 1
            records.add(record)
        elif record is None:
            outcome.duplicates += 1
    records |= _keep(facts, deps, outcome)
    moved = store.apply_memberships(rows)
    writer = Writer(deps, deps.clock())
    writer.rehome(moved)
    owners = store.customers_of(sorted(records | moved))
    writer.evaluate(sorted({owners[r] for r in records} | {c for c in moved if owners[c] == c}))
    writer.republish(c for c in moved & regrouped if owners[c] == c)
    outcome.counts.update(writer.counts)  # evaluated, raised, resolved...: the service's handled metrics
    return writer.outbox()


def _keep(facts: _Facts, deps: Deps, outcome: BatchOutcome) -> set[str]:
    """Write a batch's facts in bulk; count the claims (keyed facts) that were new; their records."""
    store = deps.store
    store.add_events(facts.events)
    store.add_purchases(facts.purchases)
    store.add_refunds(facts.refunds)
    store.put_attributes(facts.attributes)
    new = {"occurrence": store.add_occurrences(facts.occurrences), "expiry": store.add_expiries(facts.expiries),
           "loyalty": {f"{r.record_id}\0{r.version}" for r in store.put_loyalty(facts.loyalty)}}
    records: set[str] = set()
    for what, key, record in facts.claims:
        if key in new[what]:
            new[what].discard(key)  # the same fact twice in one batch: the second is a duplicate
            outcome.processed += 1
            records.add(record)
        else:
            outcome.duplicates += 1
    return records
