"""The table: each kind of message alerts consumes -> the handler that takes it, and the glue that applies it.

A resolved customer event goes by the kind of channel event it carries (a kind with no entry of its own
still moves its record into its customer: ``CustomerEventResolved``'s entry); any other kind of message
on these topics is for another service, and counted as ignored. A new channel event that should raise an
alert is one entry here (``occurrences`` with the kind its rule reads) and one rule in ``domain/rules.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from itertools import groupby

from services.alerts.handlers import Deps
from services.alerts.handlers import consume as h
from shared.contract.events import ComplaintEvent, ProfileEvent, PurchaseEvent, RefundEvent, SurveyEvent, parse_event
from shared.contract.messages import (
    CustomerErased,
    CustomerEventResolved,
    CustomerMerged,
    CustomerOwnerChanged,
    PointsExpired,
    PointsExpiryAnnounced,
    Read,
    StoreSaleRecorded,
    TierChanged,
    ViewPartUpdated,
    read,
)
from shared.storage.base import OutboxMessage
from shared.streaming.batch import BatchOutcome, Decoded, Incoming
from shared.streaming.erasure import consume_with_erasures

Handler = Callable[..., list[OutboxMessage]]  # (items: list[Decoded[Read]], *, deps: Deps, outcome: consume.Fold)

HANDLERS: dict[type, Handler] = {
    # identity: channel events by kind, then the fallback for every other kind of resolved event
    PurchaseEvent: h.purchases,
    RefundEvent: h.refunds,
    ProfileEvent: h.profiles,
    ComplaintEvent: partial(h.occurrences, kind="complaint", store="store_id"),
    SurveyEvent: partial(h.occurrences, kind="survey", value="score", store="store_id"),
    CustomerEventResolved: h.other_events,
    CustomerMerged: h.merges,
    CustomerOwnerChanged: h.owners,  # issue 12: who may see the customer
    StoreSaleRecorded: h.store_sales,  # issue 15: a non-member's sale, for store totals
    # loyalty
    PointsExpiryAnnounced: h.expiry_announcements,
    PointsExpired: h.points_expired,
    TierChanged: h.tier_changes,
    ViewPartUpdated: h.loyalty_parts,
    # Issue 12: erase the customer and confirm (not a fold step: it runs after the messages before it
    # are kept and evaluated, and returns its confirmations).
    CustomerErased: h.erase,
}


def consume(batch: list[Incoming], *, deps: Deps) -> BatchOutcome:
    """Fold a batch of identity and loyalty messages in and evaluate the customers they touch."""
    # An erasure is a barrier: what came before it is applied first; what names an erased id is dropped.
    return consume_with_erasures(batch, deps=deps, service="alerts", decode=lambda msg: _read(msg.value),
                                 dispatch=_apply, erase=HANDLERS[CustomerErased])


def _read(raw: bytes) -> Read:
    """:func:`read`, with the sale inside a non-member's sale parsed too (issue 15: alerts alone reads it)."""
    item = read(raw)
    if isinstance(item.message, StoreSaleRecorded):
        return Read(item.message, parse_event(item.message.event, resolved=True))
    return item


def _handler(item: Read) -> Handler | None:
    if isinstance(item.message, StoreSaleRecorded):
        return HANDLERS[StoreSaleRecorded]
    if item.event is not None and (handler := HANDLERS.get(type(item.event))) is not None:
        return handler
    return HANDLERS.get(type(item.message))


def _apply(items: list[Decoded[Read]], *, deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    """Each run of messages with one handler to it, in batch order; then the batch noted is kept and evaluated."""
    fold = h.begin(items, deps=deps, outcome=outcome)
    for handler, run in groupby(items, key=lambda one: _handler(one.item)):
        if handler is None:
            outcome.counts["ignored"] += len(list(run))
        else:
            handler(list(run), deps=deps, outcome=fold)  # nothing of its own: settle announces the batch
    return h.settle(fold, deps=deps)
