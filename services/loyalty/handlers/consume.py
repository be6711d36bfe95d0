"""Loyalty's message handler: identity's events and merges and campaigns' grants, kept and settled.

A batch keeps its facts (purchases, refunds, campaign grants, record memberships) and then settles
each customer it touched once, all in one store transaction with the outbox. The three kinds are one
handler because of that: a merge between two purchases of a batch settles the survivor once, with
every reason in batch order, as a batch of one kind would.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from functools import partial

from services.loyalty.domain.model import ADJUST, OPENING, Bonus, Entry, Line, Purchase, Refund, TierImport
from services.loyalty.domain.rules import BEGINNING
from services.loyalty.handlers import Deps
from services.loyalty.handlers.accounts import Touched, settle_many
from services.loyalty.store import LoyaltyStore
from shared.clock import iso_utc
from shared.contract import topics
from shared.contract.events import ChannelEvent, PointsOpeningEvent, PurchaseEvent, RefundEvent, TierImportEvent
from shared.contract.facts import local_day, to_minor
from shared.contract.messages import CampaignBonusGranted, CustomerEventResolved, CustomerMerged, Read
from shared.observability.trace_context import event_attributes
from shared.storage.base import OutboxMessage
from shared.storage.membership import Membership, memberships_of
from shared.storage.owners import owner_row
from shared.streaming.batch import BatchOutcome, Decoded, message_span
from shared.streaming.erasure import erase_each

SERVICE = "loyalty"


def ledger(items: list[Decoded[Read]], *, deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    """Keep a batch's facts and settle each customer they touch once; returns what to publish."""
    store = deps.store
    touched = Touched()
    purchases: dict[int, Purchase] = {}
    refunds: dict[int, Refund] = {}
    imported: list[Entry | TierImport] = []  # issue 14: opening lots and imported tiers
    # Each message's memberships are applied as that message alone would apply them, all in one store call
    # after the loop; the changes they and the grants make are noted in batch order (the triggers' order).
    runs: list[list[Membership]] = []
    noted: list[tuple[str, str | int]] = []  # (why, the customer a grant touched or the index of a run)
    posted_at = iso_utc(deps.clock())  # the batch's opening lots are posted together, stamped once
    for n, one in enumerate(items):
        m, event = one.item.message, one.item.event
        # Attributes are built only for a span that records (an event sampled out costs none of them).
        with message_span(SERVICE, one.msg, partial(_attributes, m, event)):
            if isinstance(m, CampaignBonusGranted):
                if store.put_bonus(_bonus(m)):
                    # A grant replaced may have covered an earlier window than the new one: all of it is redone.
                    noted.append((f"grant:{m.grant_id}", m.customer_id))
                    outcome.processed += 1
                else:
                    outcome.duplicates += 1
                continue
            why = f"merge:{m.merge_id}" if isinstance(m, CustomerMerged) else f"membership:{m.record_id}"
            noted.append((why, len(runs)))
            runs.append(memberships_of(m))
            if event is not None and (p := _purchase(event, m.record_id, deps=deps)) is not None:
                purchases[n] = p
            elif event is not None and (r := _refund(event, m.record_id)) is not None:
                refunds[n] = r
            elif event is not None and (i := _imported(event, m.record_id, posted_at=posted_at)) is not None:
                imported.append(i)
            else:
                outcome.processed += 1
    moved = store.apply_membership_runs(runs)
    for why, whom in noted:
        for c in moved[whom] if isinstance(whom, int) else (whom,):
            touched.add(c, why, BEGINNING)
    _keep_imported(imported, store=store, touched=touched, outcome=outcome)
    new_p = {(p.source, p.id) for p in store.add_purchases(list(purchases.values()))}
    new_r = {(r.source, r.id) for r in store.add_refunds(list(refunds.values()))}
    counted: set[tuple[str, str, str]] = set()
    for fact in [*purchases.values(), *refunds.values()]:
        key = (type(fact).__name__, fact.source, fact.id)
        if key not in counted and (fact.source, fact.id) in (new_p if isinstance(fact, Purchase) else new_r):
            outcome.processed += 1
        else:
            outcome.duplicates += 1  # seen in an earlier batch, or twice in this one
        counted.add(key)
    fresh_purchases = [p for p in purchases.values() if (p.source, p.id) in new_p]
    for p in fresh_purchases:
        touched.add(p.record_id, f"event:{p.source}:{p.id}", p.time)
    fresh_refunds = [r for r in refunds.values() if (r.source, r.id) in new_r]
    # The earliest purchase of an order owns its refunds: a new purchase under a refunded order id may take
    # them from another purchase (another member's, even), whose points change though its facts did not.
    refunded = {r.order_id for r in store.refunds_for_orders(sorted({p.order_id for p in fresh_purchases}))}
    bought: dict[str, list[Purchase]] = defaultdict(list)
    for p in store.purchases_for_orders(sorted({r.order_id for r in fresh_refunds} | refunded)):
        bought[p.order_id].append(p)
    for r in fresh_refunds:
        for p in bought[r.order_id]:
            # A refund changes its order's points, lot and month: from the purchase's time on.
            touched.add(p.record_id, f"event:{r.source}:{r.id}", p.time)
    for fresh in fresh_purchases:
        for p in bought.get(fresh.order_id, []) if fresh.order_id in refunded else []:
            if p.bucket != fresh.bucket:
                touched.add(p.record_id, f"event:{fresh.source}:{fresh.id}", p.time)
    outcome.counts["customers_settled"] += len(touched.why)
    return settle_many(touched, deps=deps)


def _attributes(m: CustomerEventResolved | CustomerMerged | CampaignBonusGranted,
                event: ChannelEvent | None) -> dict[str, str]:
    return {"crm.customer_id": _customer(m), **(event_attributes(event) if event is not None else {})}


def _customer(m: CustomerEventResolved | CustomerMerged | CampaignBonusGranted) -> str:
    return m.survivor_id if isinstance(m, CustomerMerged) else m.customer_id


def _bonus(m: CampaignBonusGranted) -> Bonus:
    return Bonus(m.grant_id, m.campaign_id, m.customer_id, m.multiplier, m.starts_at, m.ends_at, m.active, m.at)


def _purchase(event: ChannelEvent, record_id: str, *, deps: Deps) -> Purchase | None:
    if not isinstance(event, PurchaseEvent):
        return None
    d = event.data
    lines = tuple(Line(i.sku, i.category, i.quantity, to_minor(i.unit_price) if i.unit_price is not None else None)
                  for i in d.items)
    day = local_day(event.time, deps.settings.store_zone(d.store_id)).isoformat()
    return Purchase(event.source, event.id, record_id, d.order_id, to_minor(d.amount), event.time, day, lines)


def _refund(event: ChannelEvent, record_id: str) -> Refund | None:
    if not isinstance(event, RefundEvent):
        return None
    return Refund(event.source, event.id, record_id, event.data.order_id, to_minor(event.data.amount), event.time)


# -- issue 14, member import ---------------------------------------------------------------------


def _imported(event: ChannelEvent, record_id: str, *, posted_at: str) -> Entry | TierImport | None:
    """An opening lot (a movement dated at its earn moment, posted once, at ``posted_at``) or an imported tier."""
    if isinstance(event, PointsOpeningEvent):
        bucket = f"o:{event.source}:{event.id}"
        return Entry(f"{bucket}|{OPENING}|1", record_id, bucket, OPENING, ADJUST, event.data.points,
                     iso_utc(event.time), posted_at, {"import": event.id})
    if isinstance(event, TierImportEvent):
        # An event from before ``imported_at`` was announced was imported at its own moment.
        return TierImport(event.source, event.id, record_id, event.data.tier, event.time,
                          event.data.imported_at or event.time)
    return None


def _keep_imported(imported: list[Entry | TierImport], *, store: LoyaltyStore, touched: Touched,
                   outcome: BatchOutcome) -> None:
    """Keep what was not kept before and note the customers it touches, from the fact's own moment."""
    fresh: list[Entry | TierImport] = [*store.add_openings([f for f in imported if isinstance(f, Entry)]),
                                       *store.add_tier_imports([f for f in imported if isinstance(f, TierImport)])]
    for fact in fresh:
        if isinstance(fact, Entry):
            touched.add(fact.record_id, f"opening:{fact.bucket}", datetime.fromisoformat(fact.effective_at))
        else:
            touched.add(fact.record_id, f"tier_import:{fact.source}:{fact.id}", fact.since)
    outcome.processed += len(fresh)
    outcome.duplicates += len(imported) - len(fresh)


# -- issue 12, scoped access (H2) -----------------------------------------------------------------


def owners(items: list[Decoded[Read]], *, deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    """Keep each customer's owning store as identity announces it (who may see the customer)."""
    deps.store.put_owners([owner_row(one.item.message) for one in items])
    outcome.processed += len(items)
    return []

def erase(items: list[Decoded[Read]], *, deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    """Erase customers (issue 12): ledger and redemptions kept under an anonymous id, the rest deleted;
    each erasure confirmed on loyalty's topic."""
    return erase_each(items, service=SERVICE, store=deps.store, settings=deps.settings,
                      topic=topics.LOYALTY_EVENTS, clock=deps.clock, outcome=outcome)
