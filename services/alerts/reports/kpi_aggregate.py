"""Store KPIs' incremental aggregates (issue 15): what one batch of sales and refunds adds to them.

Pure: the store adapters read the few rows a batch touches, call :func:`fold_sales` and write its
``Changes`` back in the same transaction as the facts. Rows are keyed by identity record (never by
customer), so merges and unmerges change past months at read time through the membership mapping.

- an order row per ``order_id``: its store, month, record (None: a non-member; ``ERASED``) and amount, and every refund
  received for it (a refund arriving before its purchase waits in a row with no amount);
- per store and month: orders, sales, refunds, and the members' share of each;
- per store, month and record: the purchase days (a bit per day of the month), orders and net spend;
- per record: its first two distinct purchase days (a customer's are the two smallest of their records').
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace

from shared.contract.facts import PurchaseFact, RefundFact

# Store totals' columns, in order (``StoreMonth.values``).
TOTALS = ("orders", "sales_minor", "refunds_minor", "member_orders", "member_sales_minor", "member_refunds_minor")
NO_STORE = ""  # the store of a purchase naming none: counted company-wide, in no store's report
ERASED = ""  # the record of an erased member's order: still a member's sale, of no one any more


@dataclass(frozen=True)
class Sale:
    """One purchase as store KPIs count it: ``record_id`` None is a non-member's sale."""

    order_id: str
    store_id: str
    day: str  # ISO local day in the store's timezone
    record_id: str | None
    amount_minor: int


@dataclass(frozen=True)
class Order:
    """An order and the refunds received for it; ``amount_minor`` None: refunded before its purchase came."""

    order_id: str
    store_id: str | None = None
    month: str | None = None
    record_id: str | None = None
    amount_minor: int | None = None
    refunded_minor: int = 0

    def applied(self) -> int:
        """What the refunds take off the order's sales: at most the order's amount, nothing before it is known."""
        return 0 if self.amount_minor is None else min(self.refunded_minor, self.amount_minor)


@dataclass
class Changes:
    """What a batch adds: order rows to keep (absolute), increments of the totals, first days (absolute)."""

    orders: list[Order] = field(default_factory=list)
    totals: dict[tuple[str, str], list[int]] = field(default_factory=lambda: defaultdict(lambda: [0] * len(TOTALS)))
    # (store, month, record) -> [day bits, orders, net spend in fen]
    records: dict[tuple[str, str, str], list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0]))
    firsts: dict[str, tuple[str, str | None]] = field(default_factory=dict)


def sales_of(rows: list[PurchaseFact], *, member: bool) -> list[Sale]:
    """Purchases as KPIs count them (``member`` False: non-members' sales, whatever record they carry)."""
    return [Sale(r.order_id, r.store_id or NO_STORE, r.day, r.record_id if member else None, r.amount_minor)
            for r in rows]


def refunds_of(rows: list[RefundFact]) -> list[tuple[str, int]]:
    """Refunds as KPIs count them: the order they refund and how much."""
    return [(r.order_id, r.amount_minor) for r in rows]


def day_bit(day: str) -> int:
    """The bit of a day (ISO) in its month's day set."""
    return 1 << (int(day[8:10]) - 1)


def fold_sales(sales: list[Sale], refunds: list[tuple[str, int]], *, held: dict[str, Order],
               firsts: dict[str, tuple[str, str | None]]) -> Changes:
    """What new ``sales`` and ``refunds`` ((order_id, fen)) change, given the order rows and first days held
    for the orders and records they name."""
    out = Changes()
    state = dict(held)
    days: dict[str, set[str]] = defaultdict(set)
    for s in sales:
        month = s.day[:7]
        totals = out.totals[(s.store_id, month)]
        totals[0] += 1
        totals[1] += s.amount_minor
        if s.record_id is not None:
            totals[3] += 1
            totals[4] += s.amount_minor
            row = out.records[(s.store_id, month, s.record_id)]
            row[0] |= day_bit(s.day)
            row[1] += 1
            row[2] += s.amount_minor
            days[s.record_id].add(s.day)
        known = state.get(s.order_id)
        if known is None or known.amount_minor is None:  # a second purchase with a known order id adds no order
            state[s.order_id] = Order(s.order_id, s.store_id, month, s.record_id, s.amount_minor,
                                      known.refunded_minor if known else 0)
    for order_id, amount in refunds:
        known = state.get(order_id) or Order(order_id)
        state[order_id] = replace(known, refunded_minor=known.refunded_minor + amount)
    for order_id, order in state.items():
        before = held.get(order_id)
        if before == order:
            continue
        out.orders.append(order)
        taken = order.applied() - (before.applied() if before else 0)
        if taken and order.store_id is not None and order.month is not None:
            totals = out.totals[(order.store_id, order.month)]
            totals[2] += taken
            if order.record_id is not None:
                totals[5] += taken
                if order.record_id != ERASED:
                    out.records[(order.store_id, order.month, order.record_id)][2] -= taken
    for record, new in days.items():
        have = firsts.get(record)
        both = sorted(new | ({d for d in have if d} if have else set()))
        two = (both[0], both[1] if len(both) > 1 else None)
        if two != have:
            out.firsts[record] = two
    return out
