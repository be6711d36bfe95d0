"""The attendance sheet (客户考勤表): per customer, a month's visits at one store, spend, covers, spend per head.

A visit is one sitting. With the store's meal periods (``lunch=10:30-15:00;dinner=16:30-22:30`` in the stores
registry) the purchases of one customer in one meal period of one day are one visit, so lunch and dinner are
two; the purchases of one day outside every period (or at a store without periods) are one visit of that day.
Each purchase's sitting is decided when it is kept, from the periods in force then, and kept per identity
record (:class:`SittingRow`); the sheet maps records to customers when it is read, so a merge joins two
customers' visits (one sitting of both is one visit) and an unmerge splits them, in every past month.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as Time
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

from shared.access.stores import MealPeriod, StoreRegistry
from shared.contract.facts import PurchaseFact, from_minor
from shared.http.errors import InvalidInput

OUTSIDE = ""  # the sitting of a purchase outside every meal period: its day
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
CENT = Decimal("0.01")


@dataclass(frozen=True)
class SittingFact:
    """One purchase as the attendance sheet counts it: the sitting (day and meal period) it belongs to."""

    source: str
    id: str
    order_id: str
    record_id: str
    store_id: str
    day: str  # the sitting's day, ISO (a period past midnight belongs to the day it started)
    sitting: str  # the meal period's name, or OUTSIDE
    amount_minor: int
    covers: int | None


@dataclass(frozen=True)
class SittingRow:
    """The kept aggregate of one record's purchases in one sitting at one store."""

    record_id: str
    day: str
    sitting: str
    orders: int
    spend_minor: int
    refund_minor: int
    covers: int | None  # the largest party size its purchases gave; None when none gave one


@dataclass(frozen=True)
class AttendanceLine:
    """One customer's line of the sheet."""

    customer_id: str
    visits: int
    orders: int
    spend_minor: int
    covers: int | None
    spend_per_head: Decimal | None
    tier: str | None


def sitting_of(moment: datetime, periods: Iterable[MealPeriod]) -> tuple[date, str]:
    """The day and meal period a local moment belongs to (OUTSIDE every period: its own day)."""
    day, at = moment.date(), Time(moment.hour, moment.minute, moment.second, moment.microsecond)
    for p in periods:
        if p.start < p.end:
            if p.start <= at < p.end:
                return day, p.name
        elif at >= p.start:  # a period past midnight: its evening part
            return day, p.name
        elif at < p.end:  # ... and its small hours, which belong to the evening it started
            return day - timedelta(days=1), p.name
    return day, OUTSIDE


def sittings(purchases: Iterable[PurchaseFact], *, periods_of: Callable[[str], Iterable[MealPeriod]],
             zone_of: Callable[[str | None], ZoneInfo]) -> list[SittingFact]:
    """The sittings of a batch's purchases (those naming no store belong to no store's sheet)."""
    out = []
    periods: dict[str, tuple[MealPeriod, ...]] = {}  # per store, looked up once a batch
    for p in purchases:
        if p.store_id is None:
            continue
        if (mine := periods.get(p.store_id)) is None:
            mine = periods[p.store_id] = tuple(periods_of(p.store_id))
        if mine:
            local = datetime.fromtimestamp(p.time_ms / 1000, UTC).astimezone(zone_of(p.store_id))
            day, sitting = sitting_of(local, mine)
            seat_day = day.isoformat()
        else:  # no periods: the purchase's own day (counted in the same zone), no clock arithmetic
            seat_day, sitting = p.day, OUTSIDE
        out.append(SittingFact(p.source, p.id, p.order_id, p.record_id, p.store_id, seat_day, sitting,
                               p.amount_minor, p.covers))
    return out


def periods_in(registry: StoreRegistry) -> Callable[[str], tuple[MealPeriod, ...]]:
    """A store's meal periods in the registry (none for a store it lacks)."""

    def periods(store_id: str) -> tuple[MealPeriod, ...]:
        store = registry.get(store_id)
        return store.meal_periods if store is not None else ()

    return periods


def month_of(text: str | None, *, name: str = "month") -> tuple[date, date]:
    """The first day of ``YYYY-MM`` and of the month after; a bad one is a 422 naming the parameter."""
    m = _MONTH.fullmatch(text or "")
    # The years events may carry (1900 to 9998): 9999-12 has no month after it to bound a query with.
    if m is None or not 1 <= int(m[2]) <= 12 or not 1900 <= int(m[1]) <= 9998:
        raise InvalidInput("invalid_month", f"{name}: a month as YYYY-MM, such as 2026-11",
                           details={"parameter": name})
    first = date(int(m[1]), int(m[2]), 1)
    return first, (first + timedelta(days=32)).replace(day=1)


def per_head(spend_minor: int, covers: int | None) -> Decimal | None:
    """Spend ÷ covers, exact, then rounded half to even to the fen; None without covers."""
    if not covers:
        return None
    return (Decimal(spend_minor) / 100 / covers).quantize(CENT, rounding=ROUND_HALF_EVEN)


def sheet(rows: Iterable[SittingRow], *, customer_of: dict[str, str], tiers: dict[str, str | None]
          ) -> list[AttendanceLine]:
    """Each customer's line from its records' sittings, biggest spender first (ties by customer id).

    A visit is a distinct (day, sitting) over every record of the customer, its covers the largest any
    record's purchases gave; spend is net of refunds (a sitting never below zero); spend per head divides the
    spend of the visits that gave covers by their covers.
    """
    visits: dict[str, dict[tuple[str, str], list[int | None]]] = {}
    orders: dict[str, int] = {}
    for r in rows:
        cust = customer_of.get(r.record_id, r.record_id)
        seat = visits.setdefault(cust, {}).setdefault((r.day, r.sitting), [0, None])
        seat[0] += max(r.spend_minor - r.refund_minor, 0)
        if r.covers is not None:
            seat[1] = r.covers if seat[1] is None else max(seat[1], r.covers)
        orders[cust] = orders.get(cust, 0) + r.orders
    lines = []
    for cust, seats in visits.items():
        spend = sum(s[0] for s in seats.values())
        counted = [s for s in seats.values() if s[1] is not None]
        covers = sum(s[1] for s in counted) if counted else None
        lines.append(AttendanceLine(cust, len(seats), orders[cust], spend, covers,
                                    per_head(sum(s[0] for s in counted), covers), tiers.get(cust)))
    return sorted(lines, key=lambda x: (-x.spend_minor, x.customer_id))


def pick_tiers(customer_ids: Iterable[str], *, owner: dict[str, str],
               rows: Iterable[tuple[str, str | None, str]]) -> dict[str, str | None]:
    """Each customer's tier from its records' loyalty parts (record, tier, version): the customer's own part,
    else the newest (as its alert facts read it: loyalty republishes the survivor's part after a merge)."""
    best: dict[str, tuple[bool, str, str | None]] = {}
    for rec, tier, version in rows:
        cust = owner.get(rec, rec)
        key = (rec == cust, version, tier)
        if cust not in best or key[:2] > best[cust][:2]:
            best[cust] = key
    return {c: best[c][2] if c in best else None for c in customer_ids}


CSV_COLUMNS = ("customer_id", "visits", "orders", "spend", "covers", "spend_per_head", "tier")


def sheet_csv(lines: Iterable[AttendanceLine]) -> str:
    """The sheet as CSV, one line per customer (money as two-place decimals, empty where there is none)."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(CSV_COLUMNS)
    for x in lines:
        out.writerow([x.customer_id, x.visits, x.orders, from_minor(x.spend_minor),
                      "" if x.covers is None else x.covers, "" if x.spend_per_head is None else x.spend_per_head,
                      x.tier or ""])
    return buf.getvalue()
