"""Identity's table: each message type it consumes and the handler that takes it, and the glue that
decodes a batch once (through shared code) and hands each handler the typed items of its kinds."""

from __future__ import annotations

import sys
from collections.abc import Callable
from itertools import groupby
from typing import Any

from services.identity.domain.cleaning import Prepared, prepare
from services.identity.domain.erasure import ErasedEvent, identifiers_in, pseudonyms_of
from services.identity.handlers import Deps, consume
from shared.contract import topics
from shared.contract.events import (
    ComplaintEvent,
    ConsentEvent,
    DeliveryEvent,
    FollowEvent,
    InvalidEvent,
    OtherEvent,
    PageViewEvent,
    PointsOpeningEvent,
    ProfileEvent,
    PurchaseEvent,
    RefundEvent,
    SurveyEvent,
    TierImportEvent,
    check_size,
)
from shared.contract.messages import AuditRecorded, ErasureConfirmed, ViewPartUpdated, decode
from shared.storage.base import OutboxMessage
from shared.streaming.batch import MAX_MESSAGE_BYTES, BatchOutcome, Decoded, Incoming, process_batch

Handler = Callable[..., list[OutboxMessage]]

HANDLERS: dict[type, Handler] = {
    # Channel events, whatever their type, are resolved to a customer and kept on the timeline.
    PurchaseEvent: consume.resolve,
    RefundEvent: consume.resolve,
    ProfileEvent: consume.resolve,
    ConsentEvent: consume.resolve,
    ComplaintEvent: consume.resolve,
    SurveyEvent: consume.resolve,
    FollowEvent: consume.resolve,
    PageViewEvent: consume.resolve,
    DeliveryEvent: consume.resolve,  # issue 14: receipts of campaign touches, for campaigns
    # Issue 14: what a member import brings (opening points, an imported tier) resolves like any event.
    PointsOpeningEvent: consume.resolve,
    TierImportEvent: consume.resolve,
    OtherEvent: consume.resolve,
    # The other services' parts of the single customer view.
    ViewPartUpdated: consume.hold_parts,
    # The other services' audit entries (issue 12): identity keeps the one audit log.
    AuditRecorded: consume.keep_audit,

    # Issue 12: a service confirms it erased its part of a customer; an event that would be a dead
    # letter but names an erased person is dropped instead.
    ErasureConfirmed: consume.confirm_erasure,
    ErasedEvent: consume.drop_erased,
}

# process_batch's own size check is bypassed: _decode checks each message against its topic's limit.
_SIZE_CHECKED_IN_DECODE = sys.maxsize


def consume(batch: list[Incoming], *, deps: Deps) -> BatchOutcome:
    """Decode a batch (a message that cannot be decoded is dead-lettered) and apply it by the table, in
    one store transaction."""
    channels = frozenset(deps.settings.topic(t) for t in topics.CHANNEL_TOPICS.values())
    return process_batch(batch, store=deps.store, service="identity", prefix=deps.settings.topic_prefix,
                         clock=deps.clock, decode=lambda msg: _decode(msg, channels, deps),
                         apply=lambda items, outcome: _dispatch(items, deps=deps, outcome=outcome),
                         max_bytes=_SIZE_CHECKED_IN_DECODE)


def _decode(msg: Incoming, channels: frozenset[str], deps: Deps) -> Any:
    """A channel event validated with its cleaned identifiers; on other topics the message a service
    published (``None`` for a kind this version does not know)."""
    if msg.topic in channels:
        # Channel events have a smaller, configured limit: anything derived from one must fit the broker.
        try:
            check_size(msg.value, deps.settings.max_event_bytes)
            return prepare(msg.value, deps.cleaning)
        except InvalidEvent:
            if _names_erased(msg.value, deps):
                return ErasedEvent()
            raise
    check_size(msg.value, MAX_MESSAGE_BYTES)
    return decode(msg.value)


def _names_erased(raw: bytes, deps: Deps) -> bool:
    """Whether an event that cannot be processed carries an identifier of an erased person."""
    if not deps.store.has_erasures():
        return False
    return bool(deps.store.erased(pseudonyms_of(identifiers_in(raw, deps.cleaning), deps.pseudo)))


def _kind(item: Any) -> type:
    return type(item.event) if isinstance(item, Prepared) else type(item)


def _dispatch(items: list[Decoded[Any]], *, deps: Deps, outcome: BatchOutcome) -> list[OutboxMessage]:
    """Each run of consecutive items its handler takes, in batch order, to that handler (kinds it ignores
    left out first)."""
    out: list[OutboxMessage] = []
    taken = [(handler, one) for one in items if (handler := HANDLERS.get(_kind(one.item))) is not None]
    # Other kinds on those topics are for other services. They come only on the view-part topics, between
    # the parts (a tier change, an alert): left in, they split a batch's parts into hundreds of runs of a
    # few, each a read and a write (issue 14). A batch's parts held in one go keep what those runs kept.
    if len(taken) < len(items):
        outcome.counts["ignored"] += len(items) - len(taken)
    for handler, run in groupby(taken, key=lambda pair: pair[0]):
        out += handler([one for _, one in run], deps=deps, outcome=outcome)
    return out
