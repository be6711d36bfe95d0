"""Consuming identity's and loyalty's events: facts per record, the record → customer mapping, tiers.

``messages`` hands each handler the batch's messages of its kinds, in batch order. A batch is read
message by message and written at once, a few bulk statements whatever its size. Facts are keyed
by their event (a redelivered one is a duplicate), memberships are last-writer-wins. Customers
whose campaigns or conversions changed get their part of the single customer view republished in
the same transaction.
"""

from __future__ import annotations

from functools import partial

from services.campaigns.domain.audience import kept
from services.campaigns.handlers import Deps, forget
from services.campaigns.handlers.view_part import refresh_views
from shared.contract import topics
from shared.contract.events import ChannelEvent, EventHead
from shared.contract.facts import attribute_values, purchase_fact, refund_fact
from shared.contract.messages import Read
from shared.observability.trace_context import event_attributes
from shared.storage.base import OutboxMessage
from shared.storage.membership import Membership, memberships_of, newest_per_record
from shared.storage.owners import owner_row
from shared.streaming.batch import BatchOutcome, Decoded, message_span
from shared.streaming.erasure import erase_each


def identity_messages(items: list[Decoded[Read]], *, deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    """Apply identity's resolved events and merges: the mappings they carry, then the events' facts.

    Events and merges come together, in batch order, because the mapping keeps the first of two
    writes with the same time (``shared.storage.membership``)."""
    memberships: list[Membership] = []
    events: list[ChannelEvent] = []
    records: list[str] = []  # the record of each event
    for one in items:
        message, event = one.item.message, one.item.event
        if event is not None:  # a resolved customer event (``shared.messages.read`` parsed its channel event)
            # Attributes are built only for a span that records (an event sampled out costs none of them).
            with message_span("campaigns", one.msg, partial(_event_attributes, event, message.customer_id)):
                memberships += memberships_of(message)
                events.append(event)
                records.append(message.record_id)
        else:  # a merge or an unmerge
            with message_span("campaigns", one.msg, {"crm.customer_id": message.survivor_id,
                                                     "crm.merge_id": message.merge_id}):
                memberships += memberships_of(message)
            outcome.processed += 1
    # Folded as the store folds them (``newest_per_record``): one row per record reaches it, not two per event (an
    # import's member is three events of one record: six rows).
    return _write(list(newest_per_record(memberships).values()), events, records, deps=deps, outcome=outcome)


def _event_attributes(event: ChannelEvent, customer_id: str) -> dict[str, str]:
    return {**event_attributes(event), "crm.customer_id": customer_id}


def loyalty_parts(items: list[Decoded[Read]], *, deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    """Keep customers' loyalty tiers from loyalty's part of the customer view (other parts are ignored)."""
    tiers: list[tuple[str, str | None, str]] = []
    for one in items:
        message = one.item.message
        if message.part != "loyalty":
            outcome.counts["ignored"] += 1  # another service's part on a topic campaigns reads
            continue
        with message_span("campaigns", one.msg, {"crm.customer_id": message.customer_id}):
            tier = message.value.get("tier")
            tiers.append((message.customer_id, None if tier is None else str(tier), message.version))
        outcome.processed += 1
    deps.store.put_tiers(tiers)
    return []


def _write(memberships: list[Membership], events: list[ChannelEvent], records: list[str], *, deps: Deps,
           outcome: BatchOutcome) -> list[OutboxMessage]:
    """Write what a batch says, a few statements for the whole batch; republish the changed view parts."""
    store = deps.store
    affected = store.apply_memberships(memberships)
    keys = [(e.source, e.id) for e in events]
    fresh = store.seen_first(keys)
    purchases, refunds, attributes = [], [], []
    for event, record_id, key in zip(events, records, keys, strict=True):
        if key not in fresh:
            outcome.duplicates += 1
            continue
        fresh.discard(key)  # the same event twice in one batch counts once
        outcome.processed += 1
        if isinstance(event, EventHead):  # a type campaigns keeps no fact of: its key is all it keeps
            continue
        if purchase := purchase_fact(event, record_id, deps.settings.store_zone):
            purchases.append(purchase)
        elif refund := refund_fact(event, record_id):
            refunds.append(refund)
        elif values := attribute_values(event, kept=kept):
            attributes.append((record_id, values))
    store.add_purchases(purchases)
    store.add_refunds(refunds)
    store.put_attributes(attributes)
    # A purchase or refund changes its customer's conversions: their part of the view is recomputed.
    affected |= set(store.current_customers({f.record_id for f in [*purchases, *refunds]}).values())
    return refresh_views(affected, deps=deps)


# -- issue 12, scoped access (H2) -----------------------------------------------------------------


def owners(items: list[Decoded[Read]], *, deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    """Keep each customer's owning store as identity announces it (who may see the customer)."""
    deps.store.put_owners([owner_row(one.item.message) for one in items])
    outcome.processed += len(items)
    return []

def erase(items: list[Decoded[Read]], *, deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    """Erase customers (issue 12): profile fields deleted, campaign memberships and facts kept under
    anonymous ids so results stay exact; each erasure confirmed on campaigns' topic. The ids erased are noted
    for this process's kept results and preview index to forget once the batch commits (``handlers.forget``)."""
    for one in items:
        m = one.item.message
        forget.note(deps.store, {m.customer_id, *m.records, *deps.store.records_of(m.customer_id)})
    return erase_each(items, service="campaigns", store=deps.store, settings=deps.settings,
                      topic=topics.CAMPAIGN_EVENTS, clock=deps.clock, outcome=outcome)
