"""The table: each kind of message alerts consumes -> the handler that takes it, and the glue that applies it.

A resolved customer event goes by the kind of channel event it carries (a kind with no entry of its own
still moves its record into its customer: ``CustomerEventResolved``'s entry); any other kind of message
on these topics is for another service, and counted as ignored. A new channel event that should raise an
alert is one entry here (``occurrences`` with the kind its rule reads) and one rule in ``domain/rules.py``.

The webhooks alerts hosts (issue 14) are recorded in the same batch: the batch also holds the topics only they
read (alerts' own events, campaign touches), whose messages are decoded only when a subscriber may want them,
and every message of the batch that names no erased customer is offered to them once, in batch order.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from itertools import groupby

from services.alerts.handlers import Deps
from services.alerts.handlers import consume as h
from shared.contract import topics
from shared.contract.events import (
    ChannelEventBase,
    ComplaintEvent,
    ProfileEvent,
    PurchaseEvent,
    RefundEvent,
    SurveyEvent,
    event_types,
    parse_event,
)
from shared.contract.messages import (
    CustomerErased,
    CustomerEventResolved,
    CustomerMerged,
    CustomerOwnerChanged,
    PointsExpired,
    PointsExpiryAnnounced,
    Read,
    StoreSaleRecorded,
    Takes,
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


# The channel events alerts reads whole: the kinds the table names; of any other, identity's headers let it
# read the head only (the record still joins its customer: ``other_events``; issue 13).
TAKES = Takes(event_types(*(kind for kind in HANDLERS if issubclass(kind, ChannelEventBase))), store_sales=True)

# What alerts folds in (the topics of webhook events join them in the batch: ``agents.py``).
TOPICS = (topics.CUSTOMER_EVENTS, topics.CUSTOMER_MERGED, topics.CUSTOMER_OWNERS, topics.LOYALTY_EVENTS)


def consume(batch: list[Incoming], *, deps: Deps) -> BatchOutcome:
    """Fold a batch of identity and loyalty messages in and evaluate the customers they touch; record the
    webhook deliveries of the batch's messages in the same transaction."""
    own = frozenset(deps.settings.topic(t) for t in TOPICS)
    hooks = deps.webhooks

    def decode(msg: Incoming) -> Read:
        if msg.topic in own:
            return _read(msg.value, msg.headers)
        return Read(hooks.decode(msg.value) if hooks is not None else None)  # a topic only webhooks read

    # An erasure is a barrier: what came before it is applied first; what names an erased id is dropped. The
    # customers are evaluated once, when the whole batch is applied (``finish``).
    pending = h.Pending()
    outcome = consume_with_erasures(batch, deps=deps, service="alerts", decode=decode,
                                    dispatch=partial(_apply, own=own, pending=pending), erase=HANDLERS[CustomerErased],
                                    finish=partial(h.finish, pending=pending))
    return hooks.committed(outcome) if hooks is not None else outcome


def _read(raw: bytes, headers: list[tuple[str, bytes]]) -> Read:
    """:func:`read`, with the sale inside a non-member's sale parsed too (issue 15: alerts alone reads it)."""
    item = read(raw, headers, takes=TAKES)
    if isinstance(item.message, StoreSaleRecorded):
        return Read(item.message, parse_event(item.message.event, resolved=True))
    return item


def _handler(item: Read) -> Handler | None:
    if isinstance(item.message, StoreSaleRecorded):
        return HANDLERS[StoreSaleRecorded]
    if item.event is not None and (handler := HANDLERS.get(type(item.event))) is not None:
        return handler
    return HANDLERS.get(type(item.message))


def _apply(items: list[Decoded[Read]], *, deps: Deps, outcome: BatchOutcome,
           own: frozenset[str], pending: h.Pending) -> list[OutboxMessage]:
    """Each run of alerts' messages with one handler to it, in batch order; then the run noted is kept (and
    evaluated with the rest of the batch by ``finish``). Every message is offered to the webhooks."""
    mine = [one for one in items if one.msg.topic in own]
    out: list[OutboxMessage] = []
    if mine:
        fold = h.begin(mine, deps=deps, outcome=outcome)
        for handler, run in groupby(mine, key=lambda one: _handler(one.item)):
            if handler is None:
                outcome.counts["ignored"] += len(list(run))
            else:
                handler(list(run), deps=deps, outcome=fold)  # nothing of its own: settle announces the batch
        out = h.settle(fold, deps=deps, pending=pending)
    if len(mine) < len(items):  # messages only the webhooks read: of a kind they send, or ignored
        told = sum(1 for one in items if one.msg.topic not in own and one.item.message is not None)
        outcome.processed += told
        outcome.counts["ignored"] += len(items) - len(mine) - told
    if deps.webhooks is not None:
        deps.webhooks.record([one.item.message for one in items], outcome=outcome)
    return out
