"""Loyalty use cases driven by messages and time: consume a batch, run what fell due.

A batch keeps its facts (purchases, refunds, campaign grants, record memberships) and then settles
each customer it touched once, all in one store transaction with the outbox.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, replace
from decimal import Decimal

from services.loyalty.accounts import Deps, Touched, settle_customer, settle_many
from services.loyalty.domain.model import Bonus, Line, Purchase, Refund
from services.loyalty.domain.rules import BEGINNING
from services.loyalty.store import from_ms
from shared.clock import iso_utc
from shared.contract.events import InvalidEvent, PurchaseEvent, RefundEvent, parse_event
from shared.contract.facts import epoch_ms, local_day, to_minor
from shared.contract.messages import CampaignBonusGranted, CustomerEventResolved, CustomerMerged, decode
from shared.observability.trace_context import event_attributes
from shared.storage.base import OutboxMessage, is_transient
from shared.storage.membership import memberships_of
from shared.streaming.batch import BatchOutcome, Decoded, Incoming, message_span, process_batch

SERVICE = "loyalty"
MIN_BONUS, MAX_BONUS = Decimal(1), Decimal(100)  # a bonus never takes points; 100 bounds every multiplier
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Item:
    """A decoded message and the loyalty fact it carries, if any."""

    message: CustomerEventResolved | CustomerMerged | CampaignBonusGranted
    fact: Purchase | Refund | Bonus | None = None
    attributes: tuple[tuple[str, str], ...] = ()


def read(msg: Incoming, deps: Deps) -> Item | None:
    """Decode one message; ``None`` for kinds loyalty ignores, InvalidEvent for poison."""
    message = decode(msg.value)
    if isinstance(message, CampaignBonusGranted):
        _check_grant(message)
        return Item(message, Bonus(message.grant_id, message.campaign_id, message.customer_id, message.multiplier,
                                   message.starts_at, message.ends_at, message.active, message.at))
    if isinstance(message, CustomerMerged):
        return Item(message)
    if not isinstance(message, CustomerEventResolved):
        return None
    event = parse_event(message.event)
    attrs = tuple(event_attributes(event).items())
    if isinstance(event, PurchaseEvent):
        d = event.data
        lines = tuple(Line(i.sku, i.category, i.quantity, to_minor(i.unit_price) if i.unit_price is not None else None)
                      for i in d.items)
        day = local_day(event.time, deps.settings.store_zone(d.store_id)).isoformat()
        return Item(message, Purchase(event.source, event.id, message.record_id, d.order_id, to_minor(d.amount),
                                      event.time, day, lines), attrs)
    if isinstance(event, RefundEvent):
        return Item(message, Refund(event.source, event.id, message.record_id, event.data.order_id,
                                    to_minor(event.data.amount), event.time), attrs)
    return Item(message, None, attrs)


def _check_grant(grant: CampaignBonusGranted) -> None:
    # A grant is a campaign's word on points: one loyalty cannot honour (a typo of 500 for 5) is not applied
    # to anyone's points but dead-lettered, with its reason, for the campaign's owner to correct and re-drive.
    reasons = []
    if not (grant.multiplier.is_finite() and MIN_BONUS <= grant.multiplier <= MAX_BONUS):
        reasons.append(f"multiplier: a campaign bonus multiplier is between {MIN_BONUS} and {MAX_BONUS}")
    if grant.ends_at <= grant.starts_at:
        reasons.append("window: ends_at must be after starts_at")
    if reasons:
        raise InvalidEvent("invalid_grant", reasons)


def consume_batch(messages: list[Incoming], deps: Deps) -> BatchOutcome:
    """Keep a batch's facts and settle the customers they touch, in one transaction."""
    return process_batch(messages, store=deps.store, service=SERVICE, prefix=deps.settings.topic_prefix,
                         clock=deps.clock, decode=lambda msg: read(msg, deps),
                         apply=lambda items, outcome: _apply(items, deps, outcome))


def _apply(items: list[Decoded[Item | None]], deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    store = deps.store
    touched = Touched()
    purchases: dict[int, Purchase] = {}
    refunds: dict[int, Refund] = {}
    for n, one in enumerate(items):
        item = one.item
        if item is None:
            outcome.counts["ignored"] += 1
            continue
        m = item.message
        with message_span(SERVICE, one.msg, {"crm.customer_id": _customer(m), **dict(item.attributes)}):
            if isinstance(m, CampaignBonusGranted):
                if store.put_bonus(item.fact):  # type: ignore[arg-type]
                    # A grant replaced may have covered an earlier window than the new one: all of it is redone.
                    touched.add(m.customer_id, f"grant:{m.grant_id}", BEGINNING)
                    outcome.processed += 1
                else:
                    outcome.duplicates += 1
                continue
            why = f"merge:{m.merge_id}" if isinstance(m, CustomerMerged) else f"membership:{m.record_id}"
            for c in store.apply_memberships(memberships_of(m)):
                touched.add(c, why, BEGINNING)
            if isinstance(item.fact, Purchase):
                purchases[n] = item.fact
            elif isinstance(item.fact, Refund):
                refunds[n] = item.fact
            else:
                outcome.processed += 1
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


def _customer(m: CustomerEventResolved | CustomerMerged | CampaignBonusGranted) -> str:
    return m.survivor_id if isinstance(m, CustomerMerged) else m.customer_id


def run_due(deps: Deps, *, rounds: int = 20) -> BatchOutcome:
    """Settle accounts whose expiry, expiry notice or tier review fell due by now (the scheduler's tick)."""
    outcome = BatchOutcome()
    store = deps.store
    for _ in range(rounds):
        now_ms = epoch_ms(deps.clock())
        try:
            with store.transaction():
                due = store.due_accounts(now_ms, limit=deps.config.schedule_batch)
                outcome.outbox += store.outbox_add([m for c in due for m in _settle_due(c, deps)])
        except Exception as exc:
            # The timer must not raise (the runner would end the worker, at every tick): find the account
            # at fault, postpone it, and settle the others.
            if is_transient(exc):
                raise
            due = _one_by_one(now_ms, deps, outcome)
        outcome.processed += len(due)
        if len(due) < deps.config.schedule_batch:
            break
    return outcome


def _settle_due(customer_id: str, deps: Deps) -> list[OutboxMessage]:
    store = deps.store
    if store.customer_of(customer_id) == customer_id:
        return settle_customer(customer_id, deps=deps, trigger=["schedule"], changed_from=None)
    held = store.account(customer_id)  # merged away: the survivor's account carries its lots now
    if held is not None:
        store.put_account(replace(held, next_due_ms=None))
    return []


def _one_by_one(now_ms: int, deps: Deps, outcome: BatchOutcome) -> list[str]:
    store = deps.store
    due = store.due_accounts(now_ms, limit=deps.config.schedule_batch)
    for c in due:
        try:
            with store.transaction():
                outcome.outbox += store.outbox_add(_settle_due(c, deps))
        except Exception as exc:
            if is_transient(exc):
                raise
            retry_ms = now_ms + int(deps.config.schedule_retry_s * 1000)
            log.error("loyalty: account %s could not be settled on schedule (%s); next try at %s", c,
                      type(exc).__name__, iso_utc(from_ms(retry_ms)))
            outcome.counts["schedule_failed"] += 1
            with store.transaction():
                held = store.account(c)
                if held is not None:
                    store.put_account(replace(held, next_due_ms=retry_ms))
    return due


__all__ = ["Deps", "consume_batch", "run_due", "settle_customer"]
