"""What the alerts service knows about a customer: value types the rules read, and the owner it derives."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(frozen=True, slots=True)
class Purchase:
    """One purchase: its calendar day in the store's timezone is one visit."""

    day: date
    store_id: str | None
    amount_minor: int


@dataclass(frozen=True, slots=True)
class Occurrence:
    """Something that happened once and may trigger an alert (complaint, survey, tier upgrade)."""

    key: str  # globally unique: the channel event's (source, id), loyalty's change id
    at: datetime
    store_id: str | None = None
    value: int | str | dict | None = None  # survey score; an upgrade's new tier and its benefits
    record_id: str | None = None  # the identity record it happened to (an unmerge gives it back with it)


@dataclass(frozen=True, slots=True)
class Expiry:
    """Points loyalty announced will expire."""

    key: str
    points: int
    expires_at: datetime


# The kinds of occurrence with a field of their own in ``CustomerFacts``.
NAMED_OCCURRENCES = {"complaint": "complaints", "survey": "surveys", "upgrade": "upgrades", "expired": "expired"}


@dataclass(frozen=True, slots=True)
class CustomerFacts:
    """A customer's facts, gathered from every record that makes the customer up now."""

    customer_id: str
    purchases: tuple[Purchase, ...] = ()
    refund_minor: int = 0
    complaints: tuple[Occurrence, ...] = ()
    surveys: tuple[Occurrence, ...] = ()
    upgrades: tuple[Occurrence, ...] = ()
    expiries: tuple[Expiry, ...] = ()
    expired: tuple[Occurrence, ...] = ()  # points that expired unredeemed (value: how many)
    birthday: date | None = None
    account_manager: str | None = None
    tier: str | None = None
    balance: int | None = None
    # When an alert of each type was last resolved for this customer (a resolved contact_due alert is the
    # last account-manager contact; a resolution starts a new episode of a persisting condition).
    last_resolved: dict[str, datetime] = field(default_factory=dict)
    # Probability alive under the latest churn model, when the customer is in it.
    p_alive: float | None = None
    extra: dict = field(default_factory=dict)
    # Occurrences of the other kinds (channel events a rule of the same kind reads), by kind.
    others: dict[str, tuple[Occurrence, ...]] = field(default_factory=dict)

    def occurred(self, kind: str) -> tuple[Occurrence, ...]:
        """The occurrences of one kind (``complaint``, ``survey``, ``upgrade``, ``expired`` or another)."""
        named = NAMED_OCCURRENCES.get(kind)
        return getattr(self, named) if named else self.others.get(kind, ())

    def visit_days(self, until: date) -> list[date]:
        """Distinct purchase days up to ``until``, oldest first."""
        days = sorted({p.day for p in self.purchases})
        return days[:bisect_right(days, until)]

    def spend_minor(self, until: date | None = None) -> int:
        """Purchases (up to ``until``) less refunds, in fen."""
        return sum(p.amount_minor for p in self.purchases if until is None or p.day <= until) - self.refund_minor


def home_store(purchases: tuple[Purchase, ...]) -> str | None:
    """The store with most purchase days; ties go to the most recent day, then the lowest id (as identity)."""
    days: dict[str, set[date]] = {}
    for p in purchases:
        if p.store_id:
            days.setdefault(p.store_id, set()).add(p.day)
    if not days:
        return None
    ranked = sorted(days.items(), key=lambda kv: kv[0])
    ranked.sort(key=lambda kv: (len(kv[1]), max(kv[1])), reverse=True)
    return ranked[0][0]


@dataclass(frozen=True, slots=True)
class Owner:
    """Who an alert goes to: the home store, or an assigned account manager."""

    store_id: str | None
    manager: str | None = None


def owner_of(facts: CustomerFacts) -> Owner:
    """The customer's home store (the store of their latest complaint if they never bought) and manager."""
    store = home_store(facts.purchases)
    if store is None:
        stores = [c for c in sorted(facts.complaints, key=lambda c: c.at) if c.store_id]
        store = stores[-1].store_id if stores else None
    return Owner(store, facts.account_manager)
