"""Event-effect analysis (the VIP-event case): did attending change how often and how much people buy?

For attendees and a comparable group of non-attendees, over the same number of days before and
after the event day: average spend per customer (net of refunds, every customer of the group
counted, buyers or not) and average purchase interval (per customer with at least two purchase
days: days from first to last purchase day over the gaps between them; then averaged over those
customers). The difference in differences is the attendees' change minus the non-attendees' change.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

from services.campaigns.domain.attribution import Refund, Sale, net_amounts
from services.campaigns.domain.results import money


@dataclass(frozen=True)
class Period:
    """One group's buying in one period."""

    customers: int
    buyers: int
    purchases: int
    spend_minor: int
    avg_interval_days: float | None
    customers_with_interval: int

    @property
    def spend_per_customer(self) -> Decimal:
        """Net spend over every customer of the group."""
        return money(Fraction(self.spend_minor, self.customers)) if self.customers else Decimal("0.00")


@dataclass(frozen=True)
class GroupEffect:
    """Before and after for one group."""

    customers: int
    before: Period
    after: Period

    @property
    def spend_change(self) -> Decimal:
        """Change in spend per customer."""
        return self.after.spend_per_customer - self.before.spend_per_customer

    @property
    def interval_change(self) -> float | None:
        """Change in the average purchase interval (days); None when a period has no interval."""
        if self.before.avg_interval_days is None or self.after.avg_interval_days is None:
            return None
        return self.after.avg_interval_days - self.before.avg_interval_days


@dataclass(frozen=True)
class Effect:
    """Attendees against non-attendees, and the difference in differences."""

    event_day: date
    window_days: int
    attendees: GroupEffect
    non_attendees: GroupEffect
    did_spend: Decimal
    did_interval_days: float | None


def _period(customers: set[str], sales: list[Sale], net: dict[tuple[str, str], int]) -> Period:
    days: dict[str, set[str]] = defaultdict(set)
    spend = purchases = 0
    for s in sales:
        if s.customer_id in customers:
            days[s.customer_id].add(s.day)
            spend += net[(s.source, s.id)]
            purchases += 1
    intervals = []
    for seen in days.values():
        if len(seen) >= 2:
            first, last = date.fromisoformat(min(seen)), date.fromisoformat(max(seen))
            intervals.append((last - first).days / (len(seen) - 1))
    avg = sum(intervals) / len(intervals) if intervals else None
    return Period(len(customers), len(days), purchases, spend, avg, len(intervals))


def _group(customers: set[str], before: list[Sale], after: list[Sale], net: dict) -> GroupEffect:
    return GroupEffect(len(customers), _period(customers, before, net), _period(customers, after, net))


def effect(attendees: Iterable[str], non_attendees: Iterable[str], sales: Iterable[Sale], refunds: Iterable[Refund],
           *, event_day: date, window_days: int) -> Effect:
    """Compare the two groups over ``window_days`` before the event day and from it on."""
    went = set(attendees)
    others = set(non_attendees) - went
    start = (event_day - timedelta(days=window_days)).isoformat()
    pivot = event_day.isoformat()
    end = (event_day + timedelta(days=window_days)).isoformat()
    sales = list(sales)
    net = net_amounts(sales, refunds)
    before = [s for s in sales if start <= s.day < pivot]
    after = [s for s in sales if pivot <= s.day < end]
    a, n = _group(went, before, after, net), _group(others, before, after, net)
    did_interval = None
    if a.interval_change is not None and n.interval_change is not None:
        did_interval = a.interval_change - n.interval_change
    return Effect(event_day, window_days, a, n, a.spend_change - n.spend_change, did_interval)
