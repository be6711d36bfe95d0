"""The table of what loyalty consumes: each message type -> the handler that takes it, and the glue.

A message is decoded once, by ``shared.messages.read`` (a resolved customer event with its channel
event parsed); a kind loyalty does not take (another service's view part, say) is counted ignored.
``TAKES`` names the channel events loyalty reads whole: of any other type identity's headers name, only
the head is read (the record joins its customer all the same; issue 13).
Consecutive messages bound for one handler reach it as one list, in batch order.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import groupby

from services.loyalty.domain.grants import check_grant
from services.loyalty.handlers import Deps
from services.loyalty.handlers.consume import SERVICE, erase, ledger, owners
from shared.contract.events import PointsOpeningEvent, PurchaseEvent, RefundEvent, TierImportEvent, event_types
from shared.contract.messages import (
    CampaignBonusGranted,
    CustomerErased,
    CustomerEventResolved,
    CustomerMerged,
    CustomerOwnerChanged,
    Read,
    Takes,
    read,
)
from shared.storage.base import OutboxMessage
from shared.streaming.batch import BatchOutcome, Decoded, Incoming
from shared.streaming.erasure import consume_with_erasures

Handler = Callable[..., list[OutboxMessage]]

# One handler for the three: a batch's facts are kept together and each customer they touch settled once.
HANDLERS: dict[type, Handler] = {
    CustomerEventResolved: ledger,
    CustomerMerged: ledger,
    CampaignBonusGranted: ledger,
    # issue 12: who may see the customer
    CustomerOwnerChanged: owners,

    # Issue 12: erase the customer, keeping the ledger's totals under an anonymous id; confirm.
    CustomerErased: erase,
}


# The facts the ledger keeps (``handlers.consume``: purchases, refunds, opening lots, imported tiers).
TAKES = Takes(event_types(PurchaseEvent, RefundEvent, PointsOpeningEvent, TierImportEvent))


def consume(batch: list[Incoming], *, deps: Deps) -> BatchOutcome:
    """Decode a batch, hand each run of it to its handler, in one transaction with the outbox."""
    # An erasure is a barrier: what came before it is applied first; what names an erased id is dropped.
    return consume_with_erasures(batch, deps=deps, service=SERVICE, decode=_decode, dispatch=_dispatch,
                                 erase=HANDLERS[CustomerErased])


def _decode(msg: Incoming) -> Read:
    item = read(msg.value, msg.headers, takes=TAKES)
    if type(item.message) is CampaignBonusGranted:
        check_grant(item.message)  # a grant loyalty cannot honour is a dead letter, with its reasons
    return item


def _dispatch(items: list[Decoded[Read]], *, deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    taken = [one for one in items if type(one.item.message) in HANDLERS]
    if len(taken) < len(items):
        outcome.counts["ignored"] += len(items) - len(taken)
    out: list[OutboxMessage] = []
    # A kind loyalty ignores between two of its own does not split their run.
    for handler, run in groupby(taken, key=lambda one: HANDLERS[type(one.item.message)]):
        out += handler(list(run), deps=deps, outcome=outcome)
    return out
