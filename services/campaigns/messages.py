"""The table of what campaigns consumes: each message type and the handler that takes it.

``consume`` decodes a batch through ``shared.messages.read`` (once: a resolved customer event
arrives with its channel event parsed), hands each handler the batch's messages of the types the
table maps to it, in batch order (every handler once per batch: a batch stays a few bulk
statements whatever its size), and counts a type it does not list as ignored. ``TAKES`` names the channel
events campaigns reads whole: of any other, only the head is read (issue 13). Every message gets
a decided fate through ``process_batch``: applied, a duplicate, ignored, or dead-lettered.
"""

from __future__ import annotations

from collections.abc import Callable

from services.campaigns.handlers import Deps, forget, receipts
from services.campaigns.handlers import consume as handlers
from shared.contract.events import (
    ConsentEvent,
    DeliveryEvent,
    FollowEvent,
    ProfileEvent,
    PurchaseEvent,
    RefundEvent,
    event_types,
)
from shared.contract.messages import (
    CustomerErased,
    CustomerEventResolved,
    CustomerMerged,
    CustomerOwnerChanged,
    Read,
    Takes,
    ViewPartUpdated,
    read,
)
from shared.storage.base import OutboxMessage
from shared.streaming.batch import BatchOutcome, Decoded, Incoming
from shared.streaming.erasure import consume_with_erasures

Handler = Callable[..., list[OutboxMessage]]  # (items: list[Decoded[Read]], *, deps, outcome)

HANDLERS: dict[type, Handler] = {
    # One handler for both: the record → customer mapping keeps, of two writes with the same time,
    # the first in batch order.
    CustomerEventResolved: handlers.identity_messages,
    CustomerMerged: handlers.identity_messages,
    ViewPartUpdated: handlers.loyalty_parts,
    CustomerOwnerChanged: handlers.owners,  # issue 12: who may see the customer
    # Issue 14: a resolved crm.delivery event (by the channel event it carries): a receipt of a touch.
    DeliveryEvent: receipts.receipts,

    # Issue 12: erase the customer, keeping campaign counts under anonymous ids; confirm.
    CustomerErased: handlers.erase,
}


# The channel events campaigns reads whole: the facts ``handlers.consume`` keeps (purchases, refunds, the profile
# fields of profiles, consents and follows) and receipts. Of any other, identity's headers let it read the head
# only: its record's mapping and its key, which campaigns keeps for every event (issue 13).
TAKES = Takes(event_types(PurchaseEvent, RefundEvent, ProfileEvent, ConsentEvent, FollowEvent, DeliveryEvent))


def consume(batch: list[Incoming], *, deps: Deps) -> BatchOutcome:
    """Apply a batch of identity and loyalty messages in one transaction."""
    # An erasure is a barrier: what came before it is applied first; what names an erased id is dropped.
    outcome = consume_with_erasures(batch, deps=deps, service="campaigns", decode=_read,
                                    dispatch=_dispatch, erase=HANDLERS[CustomerErased])
    # PIPL: nothing kept in memory names the erased any more (also ids noted by a batch that did not commit).
    forget.after_commit(deps.store)
    return outcome


def _read(msg: Incoming) -> Read:
    return read(msg.value, msg.headers, takes=TAKES)


def _handler(item: Read) -> Handler | None:
    # A resolved event goes by the kind of channel event it carries when the table names that kind.
    if item.event is not None and (handler := HANDLERS.get(type(item.event))) is not None:
        return handler
    return HANDLERS.get(type(item.message))


def _dispatch(items: list[Decoded[Read]], *, deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    by_handler: dict[Handler, list[Decoded[Read]]] = {}
    for one in items:
        handler = _handler(one.item)
        if handler is None:
            outcome.counts["ignored"] += 1  # other services' kinds on the topics campaigns reads
        else:
            by_handler.setdefault(handler, []).append(one)
    out: list[OutboxMessage] = []
    for handler, mine in by_handler.items():
        out += handler(mine, deps=deps, outcome=outcome)
    return out
