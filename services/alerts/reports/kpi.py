"""Store KPIs (issue 15): a month's figures of a set of stores, from the aggregates, exactly.

Pure: the rows come from the store (``kpi_rows``), each record mapped to the customer it belongs to now (so
a merge or an unmerge changes past months), each customer with their first two distinct purchase days over
all their records. Money is integer fen here; rates are exact ``Fraction``s (the API rounds them).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from fractions import Fraction
from functools import lru_cache

from services.alerts.store.kpi_rows import RecordMonth, StoreMonth

# Tenure: months from the month of a customer's first purchase to the month reported, in buckets.
TENURE = (("new", 0, 0), ("1_2_months", 1, 2), ("3_5_months", 3, 5), ("6_11_months", 6, 11),
          ("12_23_months", 12, 23), ("24_months_plus", 24, None))


@dataclass(frozen=True)
class Figures:
    """One month's KPIs of a set of stores (money in fen; None where the denominator is 0)."""

    month: str
    orders: int = 0
    gross_sales: int = 0
    refunds: int = 0
    member_orders: int = 0
    member_sales: int = 0  # net of members' refunds
    customers: int = 0
    new_customers: int = 0
    returning_new: int = 0  # new customers who bought again within the retention window
    previous_customers: int = 0
    retained_customers: int = 0  # customers of the previous month who bought again this month
    repeat_customers: int = 0  # customers with at least two purchase days this month
    purchase_days: int = 0  # distinct days with a purchase, summed over customers
    managed_customers: int = 0
    tenure: dict[str, int] = field(default_factory=dict)

    @property
    def sales(self) -> int:
        return self.gross_sales - self.refunds

    @property
    def non_member_orders(self) -> int:
        return self.orders - self.member_orders

    @property
    def non_member_sales(self) -> int:
        return self.sales - self.member_sales

    @property
    def existing_customers(self) -> int:
        return self.customers - self.new_customers


def ratio(n: int, d: int) -> Fraction | None:
    """n / d exactly, None for an empty denominator."""
    return Fraction(n, d) if d else None


def month_shift(month: str, months: int) -> str:
    """The month ``months`` after (or before) ``month`` (YYYY-MM)."""
    n = int(month[:4]) * 12 + int(month[5:7]) - 1 + months
    return f"{n // 12:04d}-{n % 12 + 1:02d}"


def _days(rows: Iterable[RecordMonth], owner: dict[str, str]) -> dict[str, int]:
    """Each customer's purchase days of the rows (bits OR'd over their records and the stores)."""
    out: dict[str, int] = defaultdict(int)
    for _, _, record, days, _, _ in rows:  # unpacked: a company's month is tens of thousands of rows
        out[owner[record]] |= days
    return out


@lru_cache(maxsize=4096)
def _month_number(month: str) -> int:
    return int(month[:4]) * 12 + int(month[5:7])


# The tenure bucket of each age in months (the last one for every age beyond).
_BUCKET = [next(name for name, lo, hi in TENURE if lo <= age and (hi is None or age <= hi))
           for age in range(TENURE[-1][1] + 1)]


def figures(month: str, *, totals: list[StoreMonth], rows: list[RecordMonth], previous: list[RecordMonth],
            owner: dict[str, str], firsts: dict[str, tuple[str, str | None]], managed: set[str],
            retention_days: int) -> Figures:
    """The month's figures: ``totals`` and ``rows`` of the month, ``previous`` the record rows of the month
    before, ``owner`` record -> customer now, ``firsts`` customer -> first two purchase days."""
    days = _days(rows, owner)
    before = set(_days(previous, owner))
    # Every buyer has first days (kept with the purchase); the guard keeps a report up if a row were missing.
    new = [c for c in days if c in firsts and firsts[c][0][:7] == month]
    window = timedelta(days=retention_days)
    returning = [c for c in new if (second := firsts[c][1]) is not None
                 and date.fromisoformat(second) - date.fromisoformat(firsts[c][0]) <= window]
    tenure = dict.fromkeys((name for name, _, _ in TENURE), 0)
    now, last = _month_number(month), len(_BUCKET) - 1
    for c in days:
        age = now - _month_number(firsts[c][0][:7]) if c in firsts else 0
        tenure[_BUCKET[min(age, last)]] += 1
    counts = [d.bit_count() for d in days.values()]
    return with_totals(Figures(month, customers=len(days), new_customers=len(new), returning_new=len(returning),
                               previous_customers=len(before), retained_customers=len(before & set(days)),
                               repeat_customers=sum(1 for n in counts if n >= 2), purchase_days=sum(counts),
                               managed_customers=len(managed & set(days)), tenure=tenure), totals)


# The figures counted per customer: a disjoint set of customers' figures add up (``plus``).
CUSTOMER_COUNTS = ("customers", "new_customers", "returning_new", "previous_customers", "retained_customers",
                   "repeat_customers", "purchase_days", "managed_customers")


def with_totals(f: Figures, totals: list[StoreMonth]) -> Figures:
    """``f`` with its orders and money from the store totals of its month."""
    t = [sum(getattr(x, c) for x in totals) for c in ("orders", "sales_minor", "refunds_minor", "member_orders",
                                                      "member_sales_minor", "member_refunds_minor")]
    return replace(f, orders=t[0], gross_sales=t[1], refunds=t[2], member_orders=t[3], member_sales=t[4] - t[5])


def plus(a: Figures, b: Figures, sign: int = 1) -> Figures:
    """The customer figures of two disjoint sets of customers together (``sign`` -1: ``b``'s, counted in ``a``,
    taken out of it)."""
    return replace(a, **{c: getattr(a, c) + sign * getattr(b, c) for c in CUSTOMER_COUNTS},
                   tenure={name: a.tenure.get(name, 0) + sign * b.tenure.get(name, 0) for name, _, _ in TENURE})


def first_days(records_of: dict[str, list[str]], held: dict[str, tuple[str, str | None]]
               ) -> dict[str, tuple[str, str | None]]:
    """Each customer's first two distinct purchase days: the two smallest of their records' own two."""
    out: dict[str, tuple[str, str | None]] = {}
    for customer, records in records_of.items():
        if len(records) == 1:  # most customers are one record: its own two days
            if (mine := held.get(records[0])) is not None:
                out[customer] = mine
            continue
        days = sorted({d for r in records if r in held for d in held[r] if d})
        if days:
            out[customer] = (days[0], days[1] if len(days) > 1 else None)
    return out
