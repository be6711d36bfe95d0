"""The VIP-event analysis on a hand-built case: spend and purchase interval before and after, and the DiD."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from services.campaigns.domain.attribution import Refund, Sale
from services.campaigns.domain.effect import effect


def s(customer: str, day: str, amount_yuan: int, sid: str | None = None) -> Sale:
    sid = sid or f"{customer}-{day}"
    return Sale(customer, "pos/SH-001", sid, sid, amount_yuan * 100, 0, day)


SALES = [
    s("a1", "2026-04-12", 100), s("a1", "2026-04-22", 100),
    s("a1", "2026-05-10", 200), s("a1", "2026-05-15", 100), s("a1", "2026-05-20", 100),
    s("a2", "2026-04-20", 50), s("a2", "2026-05-11", 150), s("a2", "2026-05-31", 100),
    s("n1", "2026-04-15", 100), s("n1", "2026-04-25", 100), s("n1", "2026-05-05", 100),
    s("n1", "2026-05-12", 100), s("n1", "2026-05-26", 100),
    s("n3", "2026-04-11", 300), s("n3", "2026-06-09", 999), s("n3", "2026-04-09", 999),  # last two outside
]
REFUNDS = [Refund("a2", "pos/SH-001", "r1", "a2-2026-05-11", 5_000)]


def test_spend_interval_and_difference_in_differences_by_hand():
    got = effect(["a1", "a2"], ["n1", "n2", "n3", "a1"], SALES, REFUNDS, event_day=date(2026, 5, 10), window_days=30)
    a, n = got.attendees, got.non_attendees
    assert (a.customers, n.customers) == (2, 3)  # an attendee listed among non-attendees is left out
    assert (a.before.purchases, a.before.buyers, a.before.spend_minor) == (3, 2, 25_000)
    assert (a.after.purchases, a.after.buyers, a.after.spend_minor) == (5, 2, 60_000)
    assert (a.before.spend_per_customer, a.after.spend_per_customer) == (Decimal("125.00"), Decimal("300.00"))
    assert (a.before.avg_interval_days, a.after.avg_interval_days) == (10.0, 12.5)
    assert (a.spend_change, a.interval_change) == (Decimal("175.00"), 2.5)
    assert (n.before.spend_per_customer, n.after.spend_per_customer) == (Decimal("200.00"), Decimal("66.67"))
    assert (n.before.avg_interval_days, n.after.avg_interval_days) == (10.0, 14.0)
    assert (n.before.customers_with_interval, n.after.buyers) == (1, 1)
    assert got.did_spend == Decimal("308.33")
    assert got.did_interval_days == -1.5


def test_no_interval_when_nobody_bought_twice():
    got = effect(["a2"], ["n3"], SALES, [], event_day=date(2026, 5, 10), window_days=30)
    assert got.attendees.before.avg_interval_days is None and got.attendees.interval_change is None
    assert got.did_interval_days is None
    assert got.attendees.after.spend_per_customer == Decimal("250.00")
