"""Builders for the messages campaigns consumes, as identity and loyalty publish them."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from shared.contract.messages import CustomerEventResolved, CustomerMerged, ViewPartUpdated, encode
from shared.streaming.batch import Incoming

T0 = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
_offsets = itertools.count()


def at(days: float = 0, hours: float = 0) -> datetime:
    """A moment relative to T0."""
    return T0 + timedelta(days=days, hours=hours)


def incoming(body, topic: str = "crm.customer.events") -> Incoming:
    """A consumed message carrying ``body``."""
    return Incoming(encode(body), topic, 0, next(_offsets), [], getattr(body, "customer_id", "k").encode())


def channel_event(kind: str, eid: str, when: datetime, data: dict, source: str = "pos/SH-001") -> dict:
    """A channel CloudEvent as identity validated it."""
    return {"specversion": "1.0", "id": eid, "source": source, "type": kind, "time": when.isoformat(),
            "data": {"identity": {"member_id": "M-x"}, **data}}


def resolved(customer: str, event: dict, *, record: str | None = None, resolved_at: datetime | None = None) -> Incoming:
    """Identity's ``CustomerEventResolved`` for an event of ``record`` (default: the customer's own)."""
    return incoming(CustomerEventResolved(customer_id=customer, record_id=record or customer, event=event,
                                          resolved_at=resolved_at or datetime.fromisoformat(event["time"])))


def purchase(customer: str, eid: str, when: datetime, amount: str, *, store: str = "SH-001",
             categories: tuple[str, ...] = ("skincare",), record: str | None = None,
             order: str | None = None, resolved_at: datetime | None = None) -> Incoming:
    """A purchase of ``amount`` CNY."""
    items = [{"sku": f"SK-{i}", "category": c, "quantity": 1} for i, c in enumerate(categories)]
    data = {"order_id": order or eid, "amount": amount, "currency": "CNY", "store_id": store, "items": items}
    return resolved(customer, channel_event("crm.purchase", eid, when, data, f"pos/{store}"), record=record,
                    resolved_at=resolved_at)


def refund(customer: str, eid: str, when: datetime, order: str, amount: str, *, store: str = "SH-001",
           record: str | None = None) -> Incoming:
    """A refund of part of an order."""
    data = {"order_id": order, "amount": amount}
    return resolved(customer, channel_event("crm.refund", eid, when, data, f"pos/{store}"), record=record)


def consent(customer: str, eid: str, when: datetime, purpose: str, granted: bool, *,
            record: str | None = None) -> Incoming:
    """A consent (or its withdrawal) for one channel."""
    return resolved(customer, channel_event("crm.consent", eid, when, {"purpose": purpose, "granted": granted},
                                            "web/shop"), record=record)


def profile(customer: str, eid: str, when: datetime, *, record: str | None = None, **fields) -> Incoming:
    """A profile event (gender, birthday, city...)."""
    return resolved(customer, channel_event("crm.profile", eid, when, fields, "wechat/mini"), record=record)


def follow(customer: str, eid: str, when: datetime, following: bool = True) -> Incoming:
    """A WeChat follow or unfollow."""
    kind = "crm.follow" if following else "crm.unfollow"
    return resolved(customer, channel_event(kind, eid, when, {}, "wechat/oa"))


def merged(survivor: str, merged_id: str, records: list[str], when: datetime, *, undo: bool = False) -> Incoming:
    """Identity's merge (or unmerge) of ``merged_id`` into ``survivor``."""
    body = CustomerMerged(kind="customer.unmerged" if undo else "customer.merged", merge_id=f"m_{merged_id}",
                          survivor_id=survivor, merged_id=merged_id, records=records, at=when)
    return incoming(body, "crm.customer.merged")


def tier(customer: str, value: str | None, version: str) -> Incoming:
    """Loyalty's part of the view, carrying the customer's tier."""
    body = ViewPartUpdated(customer_id=customer, part="loyalty", value={"points_balance": 0, "tier": value},
                           version=version)
    return incoming(body, "crm.loyalty.events")
