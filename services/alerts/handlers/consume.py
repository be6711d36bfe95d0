"""Consumption: identity's and loyalty's messages folded into the facts the rules read, in bulk.

``messages.HANDLERS`` gives each consumed kind its handler here, with every service's signature ``(items, *,
deps, outcome)``: here ``outcome`` is the batch's ``Fold`` (its counts and what its messages told), and a
handler notes into it and announces nothing itself; once the whole batch is noted, ``settle`` keeps it with a
few bulk store calls, whatever the store (on MongoDB a call per message is a round trip per document) and
applies the merges and unmerges in it; ``finish`` then evaluates each customer the batch's new facts concern,
once, after all of its messages (an erasure cuts a batch into runs, each settled in turn: the customers of
every run are evaluated once, after the last, as in a batch without the erasure).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.alerts.handlers import Deps, satisfaction
from services.alerts.handlers.evaluation import Writer
from services.alerts.reports import attendance
from services.alerts.store import ExpiryRow, LoyaltyRow, OccurrenceRow
from shared.access.stores import registry_for
from shared.clock import iso_utc
from shared.contract import topics
from shared.contract.facts import (
    FieldValue,
    PurchaseFact,
    RefundFact,
    attribute_values,
    epoch_ms,
    purchase_fact,
    refund_fact,
)
from shared.contract.messages import Read
from shared.storage.base import OutboxMessage
from shared.storage.membership import Membership, memberships_of
from shared.storage.owners import owner_row
from shared.streaming.batch import BatchOutcome, Decoded, message_span
from shared.streaming.erasure import erase_each

# The profile fields the rules read (``attributes.account_manager`` comes from ``crm.profile`` attributes).
FIELDS = ("birthday", "attributes.account_manager")

Items = list[Decoded[Read]]


@dataclass
class Fold:
    """What a batch's messages tell, to be kept in bulk; ``claims`` ties each keyed fact to its message."""

    batch: BatchOutcome
    seen: set[tuple[str, str]]  # channel events kept already, or told earlier in this batch
    events: list[tuple[str, str]] = field(default_factory=list)
    purchases: list[PurchaseFact] = field(default_factory=list)
    refunds: list[RefundFact] = field(default_factory=list)
    occurrences: list[OccurrenceRow] = field(default_factory=list)
    expiries: list[ExpiryRow] = field(default_factory=list)
    attributes: list[tuple[str, list[FieldValue]]] = field(default_factory=list)
    loyalty: list[LoyaltyRow] = field(default_factory=list)
    claims: list[tuple[str, str, str]] = field(default_factory=list)  # (what, key, record)
    records: set[str] = field(default_factory=set)  # new for sure (claims depend on what the store holds)
    # Per record, the mapping the store will keep of those the messages told: identity's newest time, the first
    # told at that time (as ``newest_per_record`` picks). One row per record, not two per message.
    joins: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    # Customers a merge or unmerge joined or split: their view parts are republished even when their alerts
    # did not change (a brand-new record also changes the mapping, but there is nothing to announce).
    regrouped: set[str] = field(default_factory=set)
    # Issue 15: non-members' sales and refunds, for store totals only.
    sales: list[PurchaseFact] = field(default_factory=list)
    sale_refunds: list[RefundFact] = field(default_factory=list)

    # The batch's own counts, so a handler counts into its ``outcome`` as every service's handlers do.
    @property
    def counts(self) -> Counter:
        return self.batch.counts

    @property
    def processed(self) -> int:
        return self.batch.processed

    @processed.setter
    def processed(self, n: int) -> None:
        self.batch.processed = n

    @property
    def duplicates(self) -> int:
        return self.batch.duplicates

    @duplicates.setter
    def duplicates(self, n: int) -> None:
        self.batch.duplicates = n

    def claim(self, what: str, key: str, record: str) -> None:
        """A keyed fact: new or a duplicate depending on what the store holds (counted in ``settle``)."""
        self.claims.append((what, key, record))

    def ignore(self) -> None:
        """A message that tells alerts nothing."""
        self.counts["ignored"] += 1

    def join(self, record: str, customer: str, at: datetime) -> None:
        """Identity says ``record`` belongs to ``customer`` as of ``at``."""
        if at.utcoffset() is None:
            at = at.astimezone(UTC)  # as ``iso_utc`` reads a naive time, so the order is that of the text kept
        held = self.joins.get(record)
        if held is None or at > held[0]:
            self.joins[record] = (at, customer)

    def memberships(self) -> list[Membership]:
        """The mappings told, one per record, as the store keeps them."""
        # A resolved event tells two (its record's and its customer's) as of one moment: its text is made once
        # (equal moments are equal UTC text).
        texts: dict[datetime, str] = {}
        return [Membership(record, customer, texts[at] if at in texts else texts.setdefault(at, iso_utc(at)))
                for record, (at, customer) in self.joins.items()]


def begin(items: Items, *, deps: Deps, outcome: BatchOutcome) -> Fold:
    """The fold of a batch, knowing (in one store call) which of its channel events were kept before."""
    return Fold(outcome, deps.store.seen_events([one.item.event.key for one in items if one.item.event is not None]))


def _span(one: Decoded[Read]):
    """The span of one message's handling."""
    return message_span("alerts", one.msg, {"crm.message.kind": one.item.message.kind})


# -- channel events (identity's ``customer.event``): each kind's facts ------------------------------


def _events(items: Items, fold: Fold, note: Callable[[Any, str], bool]) -> None:
    """Resolved channel events: each moves its record into its customer (the mapping counts whatever the
    event); ``note`` keeps what a new one tells the rules and says whether it told anything."""
    for one in items:
        m, event = one.item.message, one.item.event
        with _span(one):
            # What ``memberships_of`` says of a resolved event: its record and the customer's own are the customer's.
            fold.join(m.record_id, m.customer_id, m.resolved_at)
            fold.join(m.customer_id, m.customer_id, m.resolved_at)
            if event.key in fold.seen:
                told = None
            else:
                told = note(event, m.record_id)
                if told:
                    fold.seen.add(event.key)
                    fold.events.append(event.key)
        if told is None:
            fold.duplicates += 1
        elif not told:
            fold.ignore()  # a page view, a follow, a city: kept nowhere and evaluated for no one
        else:
            fold.processed += 1
            fold.records.add(m.record_id)


def purchases(items: Items, *, deps: Deps, outcome: Fold) -> list[OutboxMessage]:
    """Purchases: visits, spend and the home store."""

    def note(event: Any, record: str) -> bool:
        outcome.purchases.append(purchase_fact(event, record, deps.settings.store_zone))
        return True

    _events(items, outcome, note)
    return []  # announced once the batch is settled


def refunds(items: Items, *, deps: Deps, outcome: Fold) -> list[OutboxMessage]:
    """Refunds: spend less what was given back."""

    def note(event: Any, record: str) -> bool:
        outcome.refunds.append(refund_fact(event, record))
        return True

    _events(items, outcome, note)
    return []  # announced once the batch is settled


def store_sales(items: Items, *, deps: Deps, outcome: Fold) -> list[OutboxMessage]:
    """Issue 15: non-members' sales and refunds (identity resolved them to no one): store totals only."""
    for one in items:
        event = one.item.event
        with _span(one):
            if event.key in outcome.seen:
                outcome.duplicates += 1
                continue
            outcome.seen.add(event.key)
            outcome.events.append(event.key)
            if purchase := purchase_fact(event, "", deps.settings.store_zone):
                outcome.sales.append(purchase)
            elif refund := refund_fact(event, ""):
                outcome.sale_refunds.append(refund)
        outcome.processed += 1
    return []  # announced once the batch is settled (nothing: no customer changed)


def profiles(items: Items, *, deps: Deps, outcome: Fold) -> list[OutboxMessage]:
    """Profile changes: the fields the rules read (birthday, account manager)."""

    def note(event: Any, record: str) -> bool:
        if values := [v for v in attribute_values(event) if v.field in FIELDS]:
            outcome.attributes.append((record, values))
        return bool(values)

    _events(items, outcome, note)
    return []  # announced once the batch is settled


def occurrences(items: Items, *, deps: Deps, outcome: Fold, kind: str, value: str | None = None,
                store: str | None = None) -> list[OutboxMessage]:
    """Events that happen once and may each raise an alert (the rule of the same ``kind`` reads them):
    ``value`` names the event's data field the rule reads, ``store`` the one naming its store."""

    def note(event: Any, record: str) -> bool:
        d = event.data
        outcome.occurrences.append(OccurrenceRow(kind, f"{kind}|{event.source}|{event.id}", record,
                                                 epoch_ms(event.time), getattr(d, store) if store else None,
                                                 getattr(d, value) if value else None))
        return True

    _events(items, outcome, note)
    return []  # announced once the batch is settled


def other_events(items: Items, *, deps: Deps, outcome: Fold) -> list[OutboxMessage]:
    """Channel events no rule reads: their records still join their customers."""
    _events(items, outcome, lambda e, record: False)
    return []  # announced once the batch is settled


# -- identity's merges, loyalty's messages ----------------------------------------------------------


def merges(items: Items, *, deps: Deps, outcome: Fold) -> list[OutboxMessage]:
    """Merges and unmerges: the membership rows carry them; the survivor is evaluated."""
    for one in items:
        m = one.item.message
        with _span(one):
            for row in memberships_of(m):  # every row of a merge or unmerge is as of its time
                outcome.join(row.record_id, row.customer_id, m.at)
            outcome.regrouped |= {m.survivor_id, m.merged_id}
        outcome.processed += 1
        outcome.records.add(m.survivor_id)
    return []  # announced once the batch is settled


def expiry_announcements(items: Items, *, deps: Deps, outcome: Fold) -> list[OutboxMessage]:
    """Points loyalty announced will expire."""
    for one in items:
        m = one.item.message
        with _span(one):
            row = ExpiryRow(f"expiry|{m.announcement_id}", m.customer_id, m.points, epoch_ms(m.expires_at))
            outcome.expiries.append(row)
            outcome.claim("expiry", row.key, m.customer_id)
    return []  # announced once the batch is settled


def points_expired(items: Items, *, deps: Deps, outcome: Fold) -> list[OutboxMessage]:
    """Points that expired unredeemed."""
    for one in items:
        m = one.item.message
        with _span(one):
            _occurred(outcome, OccurrenceRow("expired", f"expired|{m.entry_id}", m.customer_id, epoch_ms(m.at), None,
                                          m.points))
    return []  # announced once the batch is settled


def tier_changes(items: Items, *, deps: Deps, outcome: Fold) -> list[OutboxMessage]:
    """Tier upgrades (a downgrade's tier comes with loyalty's part)."""
    for one in items:
        m = one.item.message
        if m.direction != "upgrade":
            outcome.ignore()
            continue
        with _span(one):
            # The new tier's benefits come with it: the moment is for presenting them to the customer.
            _occurred(outcome, OccurrenceRow("upgrade", f"upgrade|{m.change_id}", m.customer_id, epoch_ms(m.at), None,
                                          {"tier": m.tier, "benefits": m.benefits}))
    return []  # announced once the batch is settled


def loyalty_parts(items: Items, *, deps: Deps, outcome: Fold) -> list[OutboxMessage]:
    """Loyalty's part of the customer view: balance and tier (other parts are for identity)."""
    for one in items:
        m = one.item.message
        if m.part != "loyalty":
            outcome.ignore()
            continue
        with _span(one):
            balance = m.value.get("points_balance")
            outcome.loyalty.append(LoyaltyRow(m.customer_id, m.value.get("tier"),
                                           int(balance) if balance is not None else None, m.version))
            outcome.claim("loyalty", f"{m.customer_id}\0{m.version}", m.customer_id)
    return []  # announced once the batch is settled


def _occurred(fold: Fold, row: OccurrenceRow) -> None:
    fold.occurrences.append(row)
    fold.claim("occurrence", row.key, row.record_id)


# -- the batch, noted: kept and evaluated -----------------------------------------------------------


@dataclass
class Pending:
    """What a batch's settled runs leave to evaluate and announce once, when the batch ends (``finish``)."""

    batch: BatchOutcome | None = None  # the unit of work it belongs to (a failed batch is retried one by one)
    writer: Writer | None = None
    records: set[str] = field(default_factory=set)  # records with new facts
    moved: set[str] = field(default_factory=set)  # records a merge or unmerge moved
    regrouped: set[str] = field(default_factory=set)

    def of(self, batch: BatchOutcome, deps: Deps) -> Pending:
        """Itself for this unit of work, started afresh if it is a new one."""
        if self.batch is not batch:
            self.batch, self.writer = batch, Writer(deps, deps.clock())
            self.records, self.moved, self.regrouped = set(), set(), set()
        return self


def settle(fold: Fold, *, deps: Deps, pending: Pending) -> list[OutboxMessage]:
    """Keep a noted run of a batch and apply its merges; what it concerns is left to ``finish``."""
    store, pending = deps.store, pending.of(fold.batch, deps)
    pending.records |= fold.records | _keep(fold, deps)
    moved = store.apply_memberships(fold.memberships())
    satisfaction.keep(fold, deps=deps)  # issue 15: survey and purchase-day aggregates, this transaction
    pending.writer.rehome(moved)
    pending.moved |= moved
    pending.regrouped |= fold.regrouped
    return []  # announced once the batch ends


def finish(*, deps: Deps, outcome: BatchOutcome, pending: Pending) -> list[OutboxMessage]:
    """End a batch: evaluate each customer its runs concern, once, after all of them; the outbox announcing
    the batch (nothing about a customer an erasure in it removed)."""
    if pending.batch is not outcome:
        return []  # nothing of alerts' own in this unit of work
    writer, records, moved = pending.writer, pending.records, pending.moved
    pending.batch = None
    store = deps.store
    owners = store.customers_of(sorted(records | moved))
    customers = {owners[r] for r in records} | {c for c in moved if owners[c] == c}
    erased = store.erased_ids(sorted(customers)) if outcome.counts.get("erasures") else set()
    writer.evaluate(sorted(customers - erased))
    writer.republish(c for c in moved & pending.regrouped if owners[c] == c and c not in erased)
    outcome.counts.update(writer.counts)  # evaluated, raised, resolved...: the service's handled metrics
    out = writer.outbox()
    if erased or outcome.counts.get("erasures"):
        gone = store.erased_ids(sorted({(m.key or b"").decode("latin-1") for m in out}))
        out = [m for m in out if (m.key or b"").decode("latin-1") not in gone]
    return out


def _keep(fold: Fold, deps: Deps) -> set[str]:
    """Write a batch's facts in bulk; count the claims (keyed facts) that were new; their records."""
    store = deps.store
    store.add_events(fold.events)
    store.add_purchases(fold.purchases)
    store.add_refunds(fold.refunds)
    # Issue 15: the attendance sheet's aggregate, kept with its facts. A refund naming no one (data.identity {})
    # may still refund a member's order: it comes off that order's sitting, as off the KPIs' member sales.
    store.add_sittings(attendance.sittings(fold.purchases, periods_of=attendance.periods_in(
        registry_for(deps.settings.stores_file)), zone_of=deps.settings.store_zone),
        refunds=fold.refunds + fold.sale_refunds)
    store.add_store_sales(fold.sales, fold.sale_refunds)  # issue 15
    store.put_attributes(fold.attributes)
    new = {"occurrence": store.add_occurrences(fold.occurrences), "expiry": store.add_expiries(fold.expiries),
           "loyalty": {f"{r.record_id}\0{r.version}" for r in store.put_loyalty(fold.loyalty)}}
    records: set[str] = set()
    for what, key, record in fold.claims:
        if key in new[what]:
            new[what].discard(key)  # the same fact twice in one batch: the second is a duplicate
            fold.processed += 1
            records.add(record)
        else:
            fold.duplicates += 1
    return records


# -- issue 12, scoped access (H2) -----------------------------------------------------------------


def owners(items: Items, *, deps: Deps, outcome: Fold) -> list[OutboxMessage]:
    """Keep each customer's owning store as identity announces it (who may see the customer)."""
    deps.store.put_owners([owner_row(one.item.message) for one in items])
    outcome.processed += len(items)
    return []

def erase(items: Items, *, deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    """Erase customers (issue 12): their facts, free text and alerts deleted; each erasure confirmed on
    alerts' topic."""
    if deps.webhooks is not None:  # issue 14: webhook deliveries about them go in this same transaction
        deps.webhooks.erase([one.item.message for one in items], host_store=deps.store)
    return erase_each(items, service="alerts", store=deps.store, settings=deps.settings,
                      topic=topics.ALERTS_EVENTS, clock=deps.clock, outcome=outcome)
