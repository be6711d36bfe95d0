"""Customer facts every service reads off channel events: money, days, purchases, refunds, profile fields.

Pure functions and small value types; identity, loyalty, alerts and campaigns all fold the same
events, so they read them the same way. Money is exact: integer fen (minor units) in storage and
sums, ``Decimal`` at the edges.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from shared.contract.events import (
    ChannelEvent,
    ConsentEvent,
    FollowEvent,
    ProfileEvent,
    PurchaseEvent,
    RefundEvent,
)


def to_minor(amount: Decimal) -> int:
    """Money in fen (exact integer) for storage and sums."""
    return int((amount * 100).to_integral_exact())


def from_minor(minor: int) -> Decimal:
    """Fen back to a two-place decimal."""
    return (Decimal(minor) / 100).quantize(Decimal("0.01"))


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware datetime."""
    return int(moment.timestamp() * 1000)


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    """The calendar day of a moment in a store's timezone."""
    return moment.astimezone(zone).date()


@dataclass(frozen=True)
class PurchaseFact:
    """One purchase as every service counts it."""

    source: str
    id: str
    record_id: str
    order_id: str
    amount_minor: int
    store_id: str | None
    time_ms: int
    day: str  # the calendar day in the store's timezone, ISO
    categories: tuple[str, ...] = ()
    skus: tuple[str, ...] = ()
    covers: int | None = None  # issue 15: the party size, when the till gave it


@dataclass(frozen=True)
class RefundFact:
    """One refund (of part of an order)."""

    source: str
    id: str
    record_id: str
    order_id: str
    amount_minor: int
    time_ms: int


def purchase_fact(event: ChannelEvent, record_id: str,
                  zone_of: Callable[[str | None], ZoneInfo]) -> PurchaseFact | None:
    """The purchase an event records, if it is one; ``zone_of`` gives a store's timezone."""
    if not isinstance(event, PurchaseEvent):
        return None
    d = event.data
    return PurchaseFact(
        event.source, event.id, record_id, d.order_id, to_minor(d.amount), d.store_id, epoch_ms(event.time),
        local_day(event.time, zone_of(d.store_id)).isoformat(),
        tuple(sorted({i.category for i in d.items if i.category})), tuple(sorted({i.sku for i in d.items})),
        d.covers,
    )


def refund_fact(event: ChannelEvent, record_id: str) -> RefundFact | None:
    """The refund an event records, if it is one."""
    if not isinstance(event, RefundEvent):
        return None
    return RefundFact(event.source, event.id, record_id, event.data.order_id, to_minor(event.data.amount),
                      epoch_ms(event.time))


@dataclass(frozen=True)
class FieldValue:
    """One attribute value with where it came from; the newest by event time wins."""

    field: str
    value: object
    time_ms: int
    source: str
    event_id: str

    def order(self) -> tuple[int, str, str]:
        """Newest wins; ties broken by source and id so arrival order never matters."""
        return (self.time_ms, self.source, self.event_id)


def attribute_values(event: object, *, ms: int | None = None,
                     kept: Callable[[str], bool] | None = None) -> list[FieldValue]:
    """The profile fields an event sets: profile data, consent per purpose, WeChat follow state (``ms``: the
    event's ``epoch_ms``, when the caller has it); with ``kept``, only the fields it keeps (the others are never
    built)."""
    if not isinstance(event, ProfileEvent | ConsentEvent | FollowEvent):
        return []
    if ms is None:
        ms = epoch_ms(event.time)
    src, eid = event.source, event.id
    if isinstance(event, ProfileEvent):
        d = event.data
        values: dict[str, object] = {
            k: v for k in ("name", "gender", "email", "city") if (v := getattr(d, k)) is not None
        }
        if d.birthday is not None:
            values["birthday"] = d.birthday.isoformat()
        for k, v in d.attributes.items():
            values[f"attributes.{k}"] = v
        return [FieldValue(k, v, ms, src, eid) for k, v in values.items() if kept is None or kept(k)]
    if isinstance(event, ConsentEvent):
        field, value = f"consent.{event.data.purpose}", event.data.granted
    else:
        field, value = "wechat_following", event.type == "crm.follow"
    return [FieldValue(field, value, ms, src, eid)] if kept is None or kept(field) else []


def newest(values: list[FieldValue]) -> dict[str, FieldValue]:
    """Per field, the value with the latest event time."""
    out: dict[str, FieldValue] = {}
    for v in values:
        if v.field not in out or v.order() > out[v.field].order():
            out[v.field] = v
    return out
