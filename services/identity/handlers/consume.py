"""Identity's message handlers: resolve channel events to customers, hold the other services' view parts.

Each takes the decoded items of its kinds in batch order (``messages.py`` decodes and dispatches) and
runs inside the batch's store transaction; it returns the outbox messages its changes announce.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from services.identity.domain.cleaning import Ident, Prepared
from services.identity.domain.erasure import pseudonyms_of
from services.identity.domain.owner import changed_owners, complaint_store, owning_store
from services.identity.domain.resolution import resolve as resolve_event
from services.identity.handlers import Deps
from services.identity.handlers.known import Known
from services.identity.store import (
    ComplaintStoreRow,
    ConflictRow,
    EventRow,
    HomeStoreRow,
    IdentityStore,
    NewRecord,
)
from shared.access.audit import AuditEntry
from shared.clock import iso_utc
from shared.contract import topics
from shared.contract.events import ChannelEventBase, ProfileEvent
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
    AuditRecorded,
    CustomerMerged,
    CustomerOwnerChanged,
    ErasureConfirmed,
    StoreSaleRecorded,
    ViewPartUpdated,
    kind_headers,
    resolved_event_json,
)
from shared.observability.trace_context import event_attributes
from shared.storage.base import OutboxMessage
from shared.storage.owners import OwnerRow
from shared.streaming.batch import BatchOutcome, Decoded, message_span
from shared.streaming.outbox import outbox_message


def resolve(items: list[Decoded[Prepared]], *, deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    """Resolve channel events to customers; what a batch writes in bulk is written once at its end."""
    out: list[OutboxMessage] = []
    items = _without_erased(items, deps=deps, outcome=outcome)
    fold = _Fold(seen=deps.store.seen([one.item.event.key for one in items]))
    # Every identifier of the batch is looked up in one read; the batch's own changes are kept on top.
    known = Known(deps.store, (i for one in items if one.item.event.key not in fold.seen for i in one.item.idents))
    for one in items:
        event = one.item.event
        if event.key in fold.seen:
            outcome.duplicates += 1
            continue
        fold.seen.add(event.key)
        phone = next((i for i in one.item.idents if i[0] == "phone"), None)
        seen_at = iso_utc(event.time)  # once per event: the checks below and _apply compare and keep it
        if phone is not None and known.erased_then(phone, seen_at):
            # A replay or late upload from before a phone change, of the customer erased since: dropped like
            # any event of an erased person, not given to the number's holder now.
            outcome.counts["erased"] += 1
            continue
        if not one.item.idents:  # issue 15: a non-member's sale, for store totals only: no customer, no timeline
            out.append(outbox_message(deps.settings, topics.CUSTOMER_EVENTS, sale_key(event),
                                      StoreSaleRecorded(event=json.loads(one.item.payload), resolved_at=deps.clock()),
                                      extra_headers=kind_headers("store.sale", event.type)))
            outcome.counts["non_member"] += 1
            outcome.processed += 1
            continue
        # Attributes made only for a span that records: most events are sampled out (CRM_TRACE_RATIO).
        with message_span("identity", one.msg, lambda event=event: event_attributes(event)) as span:
            root = _apply(one.item, seen_at, deps, out, outcome, fold, known)
            span.set_attribute("crm.customer_id", root)
        outcome.processed += 1
    fold.flush(deps.store, iso_utc(deps.clock()))
    out += announce_owners(fold.owners_may_change, deps=deps)
    return out


def sale_key(event: ChannelEventBase) -> str:
    """The Kafka key of a non-member's sale or refund: its order (there is no customer to key it by), so a
    refund follows its purchase on one partition, whichever till sent it."""
    return f"order:{event.data.order_id}"  # type: ignore[attr-defined]


def hold_parts(items: list[Decoded[ViewPartUpdated]], *, deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    """Keep the newest part of each customer's view that loyalty, alerts and campaigns publish (never one of
    an erased customer, which a service may have published before it erased its own part)."""
    erased = deps.store.erased_ids(sorted({one.item.customer_id for one in items}))
    # One write per customer and part per batch (issue 13): the store keeps a part whose version is at least
    # the held one, so of a batch's updates only the last of the highest version can be what stays.
    newest: dict[tuple[str, str], ViewPartUpdated] = {}
    for one in items:
        part = one.item
        if part.customer_id in erased:
            outcome.counts["erased"] += 1
            continue
        with message_span("identity", one.msg,
                          lambda part=part: {"crm.customer_id": part.customer_id, "crm.view.part": part.part}):
            held = newest.get((part.customer_id, part.part))
            if held is None or part.version >= held.version:
                newest[(part.customer_id, part.part)] = part
        outcome.processed += 1
    deps.store.put_parts([(p.customer_id, p.part, p.value.model_dump(mode="json", exclude_unset=True), p.version)
                          for p in newest.values()])
    return []


def _without_erased(items: list[Decoded[Prepared]], *, deps: Deps, outcome: BatchOutcome) -> list[Decoded[Prepared]]:
    """The events that carry no identifier of an erased customer: the others are dropped before anything
    stores them (a replay must not bring the person back), counted ``erased``, never dead-lettered."""
    if not items or not deps.store.has_erasures():
        return items
    carried = [pseudonyms_of(one.item.idents, deps.pseudo) for one in items]
    erased = deps.store.erased([p for ps in carried for p in ps])
    if not erased:
        return items
    kept = [one for one, ps in zip(items, carried, strict=True) if erased.isdisjoint(ps)]
    outcome.counts["erased"] += len(items) - len(kept)
    return kept


def drop_erased(items: list[Decoded[object]], *, deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    """Count events dropped, unread, because they name an erased person (issue 12)."""
    outcome.counts["erased"] += len(items)
    return []


def confirm_erasure(items: list[Decoded[ErasureConfirmed]], *, deps: Deps,
                    outcome: BatchOutcome) -> list[OutboxMessage]:
    """Note each service's confirmation of an erasure (again and again changes nothing)."""
    for one in items:
        m = one.item
        with message_span("identity", one.msg, {"crm.erasure_id": m.erasure_id, "crm.erasure.service": m.service}):
            if deps.store.confirm_erasure(m.erasure_id, service=m.service, at=iso_utc(m.at)):
                outcome.processed += 1
            else:
                outcome.counts["ignored"] += 1  # an erasure this identity store never asked for
    return []


@dataclass
class _Fold:
    """What a batch writes in bulk once every event is resolved (resolution itself reads as it goes)."""

    seen: set[tuple[str, str]]
    # New records wait here until a merge needs them or the batch ends: their data keys are made in one go.
    records: list[NewRecord] = field(default_factory=list)
    links: list[tuple[str, list[Ident], str, str, str]] = field(default_factory=list)  # record, idents, source, id, at
    events: list[EventRow] = field(default_factory=list)
    purchases: list[PurchaseFact] = field(default_factory=list)
    refunds: list[RefundFact] = field(default_factory=list)
    attributes: list[tuple[str, list[FieldValue]]] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)
    complaint_stores: list[ComplaintStoreRow] = field(default_factory=list)
    home_stores: list[HomeStoreRow] = field(default_factory=list)  # issue 14: declared by a member file
    # Customers whose owning store may have moved: a purchase, a complaint naming a store or a merge (only
    # they are recomputed).
    owners_may_change: set[str] = field(default_factory=set)

    def write_records(self, store: IdentityStore) -> None:
        if self.records:
            store.create_records(self.records)
            self.records = []
        # After the records: sealing an identifier takes its record's data key, made above for new ones.
        store.link_all(self.links)
        self.links = []

    def flush(self, store: IdentityStore, at: str) -> None:
        self.write_records(store)
        store.add_events(self.events)
        store.add_purchases(self.purchases)
        store.add_refunds(self.refunds)
        store.add_complaint_stores(self.complaint_stores)
        if self.home_stores:
            store.add_home_stores(self.home_stores)
        store.put_attributes(self.attributes)
        store.touch_all(sorted(self.touched), at=at)


def _apply(prepared: Prepared, seen_at: str, deps: Deps, out: list[OutboxMessage], outcome: BatchOutcome,
           fold: _Fold, known: Known) -> str:
    event, idents = prepared.event, prepared.idents
    # A reading of the clock per event, not one per batch: identity's times order what it announces (a record's
    # membership is last-writer-wins by them downstream), so a merge must be newer than the event before it that
    # created the merged record, in one batch as in two.
    store, now = deps.store, iso_utc(deps.clock())
    found = known.find(idents)
    phone = next((i for i in idents if i[0] == "phone"), None)
    if phone is not None and (then := known.held_then(phone, seen_at)) is not None:
        found[phone] = then  # a late upload from before a phone change: its customer then, the number not linked
    roots = {f.root_id for f in found.values()}
    if len(roots) > 1:
        fold.write_records(store)  # what the store reads next must see the records this batch created
    blocked = store.blocked_pairs(roots)
    res = resolve_event(idents, found, blocked, deps.pseudo, known.replaced)
    if res.create:
        fold.records.append(NewRecord(res.create[0], res.create[1], now))
        known.created(res.create[0], phone=res.create[1])
    if res.merges:
        fold.write_records(store)  # a merge moves every record under the merged customer: all must be written
    for survivor, merged, cause in res.merges:
        merge_id = "m_" + deps.pseudo("merge", f"{survivor}|{merged}|{event.source}|{event.id}")[:16]
        moved = store.merge(
            survivor, merged, merge_id=merge_id, at=now,
            cause={"source": event.source, "event_id": event.id, "type": event.type, "event_time": seen_at,
                   "identifier_type": cause[0], "identifier": deps.pseudo(*cause)},
        )
        known.merged(survivor, merged)
        outcome.counts["merges"] += 1
        body = CustomerMerged(kind="customer.merged", merge_id=merge_id, survivor_id=survivor,
                              merged_id=merged, records=moved, at=deps.clock())
        out.append(outbox_message(deps.settings, topics.CUSTOMER_MERGED, survivor, body))
        fold.owners_may_change.add(survivor)
    for conflict in res.conflicts:
        outcome.counts["conflicts"] += 1
        store.add_conflict(ConflictRow(
            conflict_id="x_" + deps.pseudo("conflict", f"{event.source}|{event.id}|{conflict.identifier}")[:16],
            kind=conflict.kind, identifier_type=conflict.identifier[0],
            identifier_pseudonym=deps.pseudo(*conflict.identifier), customer_ids=conflict.customer_ids,
            source=event.source, event_id=event.id, at=now,
        ))
    if res.links:
        fold.links.append((res.record_id, res.links, event.source, event.id, seen_at))
        known.linked(res.record_id, res.links)
    at_ms = epoch_ms(event.time)  # once per event: the rows below and its profile fields keep it
    fold.events.append(EventRow(event.source, event.id, res.record_id, event.type, event.channel, seen_at,
                                at_ms, prepared.payload, now))
    if purchase := purchase_fact(event, res.record_id, deps.settings.store_zone):
        fold.purchases.append(purchase)
        fold.owners_may_change.add(res.root_id)
    elif refund := refund_fact(event, res.record_id):
        fold.refunds.append(refund)
    elif complained_in := complaint_store(event):
        fold.complaint_stores.append(ComplaintStoreRow(res.record_id, complained_in, at_ms))
        fold.owners_may_change.add(res.root_id)
    if isinstance(event, ProfileEvent) and event.data.home_store:  # issue 14: a member file's home store
        fold.home_stores.append(HomeStoreRow(res.record_id, event.data.home_store, at_ms))
        fold.owners_may_change.add(res.root_id)
    if values := attribute_values(event, ms=at_ms):
        fold.attributes.append((res.record_id, values))
    fold.touched.add(res.root_id)
    body = resolved_event_json(customer_id=res.root_id, record_id=res.record_id, event_json=prepared.payload,
                               resolved_at=deps.clock())
    out.append(outbox_message(deps.settings, topics.CUSTOMER_EVENTS, res.root_id, body,
                              extra_headers=kind_headers("customer.event", event.type)))
    return res.root_id



# -- issue 12, audit (H5) -------------------------------------------------------------------------


def keep_audit(items: list[Decoded[AuditRecorded]], *, deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    """Keep the audit entries the other services published (once per ``audit_id``: a replay adds none)."""
    from services.identity.handlers.commands import keep_audit_entries

    keep_audit_entries([AuditEntry(**one.item.model_dump(exclude={"kind"})) for one in items], deps=deps)
    outcome.counts["audit"] += len(items)
    return []

# -- issue 12, scoped access (H2) -----------------------------------------------------------------


_NONE = (None, None)  # a customer with no store assigned and none declared


def announce_owners(customer_ids: set[str] | list[str], *, deps: Deps) -> list[OutboxMessage]:
    """Recompute these active customers' owning stores; keep and announce the ones that changed."""
    if not customer_ids:
        return []
    store, at = deps.store, deps.clock()
    ids = sorted(customer_ids)
    complained = store.complaint_stores_of(ids)
    # Issue 14: a store staff assigned outranks the computed one; then the home store a member file named.
    named = store.named_stores_of(ids)
    computed = {c: owning_store(days, complaint_store=complained.get(c), declared_store=named.get(c, _NONE)[1],
                                assigned_store=named.get(c, _NONE)[0])
                for c, days in store.store_days_of(ids).items()}
    moved = changed_owners(computed, store.owners_of(list(computed)))
    stamp = iso_utc(at)
    store.put_owners([OwnerRow(c, s, stamp) for c, s in moved.items()])
    return [outbox_message(deps.settings, topics.CUSTOMER_OWNERS, c,
                           CustomerOwnerChanged(customer_id=c, store_id=s, at=at)) for c, s in sorted(moved.items())]


def backfill_complaint_owners(*, deps: Deps) -> list[OutboxMessage]:
    """Once per database, at start: give complaints kept before ``complaint_stores`` existed their store, and
    recompute (and announce, through the outbox) the owning stores of the customers they name, in one
    transaction, so a crash leaves it to the next start. Cheap when done: one lookup of its marker."""
    store = deps.store
    with store.transaction():
        roots = store.backfill_complaint_stores(at=iso_utc(deps.clock()))
        return store.outbox_add(announce_owners(roots, deps=deps)) if roots else []
