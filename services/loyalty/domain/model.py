"""The facts loyalty keeps per identity record and the ledger entries it derives from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cached_property
from typing import Any

# Ledger entry kinds, as statements group them.
EARN, REFUND, REDEEM, EXPIRE, ADJUST, DEBT = "earn", "refund", "redeem", "expire", "adjust", "debt"
# Kinds recomputed from facts (the rest are posted once, by people, and never recomputed).
DERIVED_KINDS = (EARN, REFUND, EXPIRE, DEBT)
RULE_KINDS = {"refund": REFUND, "expiry": EXPIRE, "debt": DEBT, "redemption": REDEEM, "cancel": REDEEM,
              "manual": ADJUST, "opening": ADJUST}
# Issue 14: an imported member's opening lot is posted once, as a movement dated at its earn moment, so it
# expires by the rule in effect then, as a purchase's lot would.
OPENING = "opening"


def kind_of(rule: str) -> str:
    """The kind of entry a rule produces."""
    return RULE_KINDS.get(rule, EARN)


@dataclass(frozen=True)
class Line:
    """One line of an order: what the category and SKU multipliers look at."""

    sku: str
    category: str | None
    quantity: int
    price_minor: int | None


@dataclass(frozen=True)
class Purchase:
    """A purchase as loyalty rates it."""

    source: str
    id: str
    record_id: str
    order_id: str
    amount_minor: int
    time: datetime
    day: str  # the calendar day in the store's zone, ISO
    lines: tuple[Line, ...] = ()

    @cached_property  # asked a dozen times a settle; a decoded purchase is kept across settles (store cache)
    def bucket(self) -> str:
        """The ledger bucket of this purchase's points (and of its lot)."""
        return f"p:{self.source}:{self.id}"

    def order(self) -> tuple[datetime, str, str]:
        """Event-time order, ties broken by identity, so arrival order never matters."""
        return (self.time, self.source, self.id)


@dataclass(frozen=True)
class Refund:
    """A refund of part of an order."""

    source: str
    id: str
    record_id: str
    order_id: str
    amount_minor: int
    time: datetime


@dataclass(frozen=True)
class Bonus:
    """A campaign's bonus multiplier for one customer's purchases inside a window."""

    grant_id: str
    campaign_id: str
    record_id: str
    multiplier: Decimal
    starts_at: datetime
    ends_at: datetime
    active: bool
    at: datetime

    def covers(self, moment: datetime) -> bool:
        """Whether a purchase at ``moment`` is inside the window (and the grant is not withdrawn)."""
        return self.active and self.starts_at <= moment < self.ends_at


@dataclass(frozen=True)
class Entry:
    """One ledger entry; the ledger is append-only and a balance is the sum of its entries."""

    entry_id: str
    record_id: str
    bucket: str
    rule: str
    kind: str
    points: int
    effective_at: str
    posted_at: str
    cause: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """What a derived bucket's entries must add up to, from the facts as they stand."""

    record_id: str
    bucket: str
    rule: str
    points: int
    effective_at: datetime
    cause: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return kind_of(self.rule)


@dataclass(frozen=True)
class Posted:
    """What a bucket's entries add up to in the ledger now."""

    record_id: str
    points: int
    count: int


@dataclass(frozen=True)
class TierImport:
    """A tier a member held in the brand's old system since ``since`` (issue 14, member import), imported at
    ``imported_at`` (None: at ``since``): held until the first review after the later of the two, then judged
    by the rules like any tier."""

    source: str
    id: str
    record_id: str
    tier: str
    since: datetime
    imported_at: datetime | None = None

    @property
    def held_until(self) -> datetime:
        """The moment after which the next review judges the member (no review up to it does)."""
        return max(self.since, self.imported_at) if self.imported_at is not None else self.since


@dataclass(frozen=True)
class Facts:
    """Everything one customer's account is derived from."""

    purchases: list[Purchase]
    refunds: list[Refund]
    bonuses: list[Bonus]
    movements: list[Entry]  # redemptions, cancellations, manual adjustments
    # order id -> bucket of the purchase that owns the order (the first one with that order id)
    order_owner: dict[str, str] = field(default_factory=dict)
    holds: tuple[Any, ...] = ()  # staff tier overrides (``domain.holds.TierHold``)
    tier_imports: list[TierImport] = field(default_factory=list)  # issue 14
