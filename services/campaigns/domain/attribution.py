"""Attribution: which campaign a purchase is credited to, and which members converted.

Pure functions over the final facts (enrolments, purchases, refunds), so the answer never depends
on the order events arrived in, and a duplicate or replay changes nothing.

- A purchase converts a member when it falls inside the member's window: from the touch
  (treatment) or the assignment (control) for ``attribution_window_days``.
- A purchase inside the windows of several campaigns is credited to the latest of them
  (``last_touch``), the earliest (``first_touch``) or split evenly in whole fen (``linear``).
- Refunds reduce the purchase they refund (matched by order id within the customer), so they
  reduce attributed revenue; a purchase refunded in full converts no one.
- Members are customers as launched; after a merge each member counts with the survivor's
  purchases, and two members of one campaign who turn out to be one person count once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.clock import iso_utc


@dataclass(frozen=True)
class Enrolment:
    """A member of a launched campaign, resolved to the customer it is part of now."""

    campaign_id: str
    member_id: str  # the customer id the audience snapshot holds
    customer_id: str  # the active customer that member belongs to now
    group: str
    at_ms: int  # touch (treatment) or assignment (control)
    window_ms: int

    def covers(self, time_ms: int) -> bool:
        """Whether a moment lies in this member's attribution window."""
        return self.at_ms <= time_ms < self.at_ms + self.window_ms


@dataclass(frozen=True)
class Sale:
    """A purchase, as the customer it belongs to now made it."""

    customer_id: str
    source: str
    id: str
    order_id: str
    amount_minor: int
    time_ms: int
    day: str  # calendar day in the store's timezone


@dataclass(frozen=True)
class Refund:
    """A refund of (part of) an order."""

    customer_id: str
    source: str
    id: str
    order_id: str
    amount_minor: int


@dataclass(frozen=True)
class Credit:
    """A campaign's share of one purchase."""

    campaign_id: str
    customer_id: str
    sale: Sale
    net_minor: int  # the purchase after its refunds
    revenue_minor: int  # this campaign's share of it


@dataclass
class Outcome:
    """What one member did inside the window, as credited to the campaign."""

    converted: bool = False
    revenue_minor: int = 0
    orders: int = 0
    first_ms: int | None = None
    first_day: str | None = None


def collapse(enrolments: Iterable[Enrolment]) -> list[Enrolment]:
    """One enrolment per campaign and customer: the customer's own, else the lowest member id."""
    chosen: dict[tuple[str, str], Enrolment] = {}
    for e in enrolments:
        key = (e.campaign_id, e.customer_id)
        held = chosen.get(key)
        if held is None or _rank(e) < _rank(held):
            chosen[key] = e
    return sorted(chosen.values(), key=lambda e: (e.campaign_id, e.customer_id))


def _rank(e: Enrolment) -> tuple[bool, str]:
    return (e.member_id != e.customer_id, e.member_id)


def net_amounts(sales: Iterable[Sale], returns: Iterable[Refund]) -> dict[tuple[str, str], int]:
    """Each purchase's amount after the refunds of its order, earliest purchase of an order first."""
    by_order: dict[tuple[str, str], list[Sale]] = defaultdict(list)
    for s in sales:
        by_order[(s.customer_id, s.order_id)].append(s)
    refunded: dict[tuple[str, str], int] = defaultdict(int)
    for r in returns:
        refunded[(r.customer_id, r.order_id)] += r.amount_minor
    out: dict[tuple[str, str], int] = {}
    for key, group in by_order.items():
        left = refunded.get(key, 0)
        for s in sorted(group, key=lambda s: (s.time_ms, s.source, s.id)):
            taken = min(left, s.amount_minor)
            left -= taken
            out[(s.source, s.id)] = s.amount_minor - taken
    return out


def split(amount: int, parts: int) -> list[int]:
    """Whole fen shares that add up to ``amount``; the remainder goes to the first shares."""
    base, rest = divmod(amount, parts)
    return [base + (1 if i < rest else 0) for i in range(parts)]


def credits(enrolments: Iterable[Enrolment], sales: Iterable[Sale], returns: Iterable[Refund],
            model: str) -> list[Credit]:
    """Every campaign's credit for every purchase inside its members' windows."""
    units = collapse(enrolments)
    by_customer: dict[str, list[Enrolment]] = defaultdict(list)
    for e in units:
        by_customer[e.customer_id].append(e)
    sales = list(sales)
    net = net_amounts(sales, returns)
    out: list[Credit] = []
    for s in sorted(sales, key=lambda s: (s.customer_id, s.time_ms, s.source, s.id)):
        candidates = sorted((e for e in by_customer.get(s.customer_id, ()) if e.covers(s.time_ms)),
                            key=lambda e: (e.at_ms, e.campaign_id))
        if not candidates:
            continue
        if model == "first_touch":
            candidates = candidates[:1]
        elif model == "last_touch":
            candidates = candidates[-1:]
        amount = net[(s.source, s.id)]
        for e, share in zip(candidates, split(amount, len(candidates)), strict=True):
            out.append(Credit(e.campaign_id, s.customer_id, s, amount, share))
    return out


def outcomes(enrolments: Iterable[Enrolment], credited: Iterable[Credit]) -> dict[tuple[str, str], Outcome]:
    """Per (campaign, customer): converted, credited revenue and orders, the first conversion."""
    out = {(e.campaign_id, e.customer_id): Outcome() for e in collapse(enrolments)}
    for c in sorted(credited, key=lambda c: (c.sale.time_ms, c.sale.source, c.sale.id)):
        got = out.get((c.campaign_id, c.customer_id))
        if got is None or c.net_minor <= 0:
            continue
        got.revenue_minor += c.revenue_minor
        got.orders += 1
        if not got.converted:
            got.converted, got.first_ms, got.first_day = True, c.sale.time_ms, c.sale.day
    return out


def view_items(enrolments: Iterable[Enrolment], done: Mapping[tuple[str, str], Outcome],
               names: Mapping[str, str]) -> dict[str, list[dict]]:
    """The ``campaigns`` part of each customer's single view: every campaign they are in."""
    out: dict[str, list[dict]] = defaultdict(list)
    for e in sorted(collapse(enrolments), key=lambda e: (e.at_ms, e.campaign_id)):
        result = done.get((e.campaign_id, e.customer_id), Outcome())
        out[e.customer_id].append({
            "campaign_id": e.campaign_id, "name": names.get(e.campaign_id, ""), "group": e.group,
            "converted": result.converted, "assigned_at": iso_utc(_utc(e.at_ms)),
        })
    return dict(out)


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
