"""Calendar arithmetic in a timezone: months, month starts, ends of days and years."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

Month = tuple[int, int]  # (year, month)


def add_months(month: Month, n: int) -> Month:
    """The month ``n`` months after (or before) ``month``."""
    index = month[0] * 12 + month[1] - 1 + n
    return index // 12, index % 12 + 1


def month_of(moment: datetime, zone: ZoneInfo) -> Month:
    """The calendar month of a moment in a zone."""
    local = moment.astimezone(zone)
    return local.year, local.month


@lru_cache(maxsize=4096)  # a settle asks for the same few months once per purchase
def month_key(month: Month) -> str:
    """``2026-11``."""
    return f"{month[0]:04d}-{month[1]:02d}"


def parse_month(text: str) -> Month:
    """``(2026, 11)`` from ``2026-11``; ValueError otherwise."""
    year, _, month = text.partition("-")
    out = (int(year), int(month))
    if not (1 <= out[1] <= 12 and 1 <= out[0] <= 9999) or len(text) != 7:
        raise ValueError("month must look like YYYY-MM")
    return out


def month_start(month: Month, zone: ZoneInfo) -> datetime:
    """The first moment of a month in a zone."""
    return datetime(month[0], month[1], 1, tzinfo=zone)


def next_month_start(moment: datetime, zone: ZoneInfo) -> datetime:
    """The start of the month after the one ``moment`` is in."""
    return month_start(add_months(month_of(moment, zone), 1), zone)


def day_end(day: date, zone: ZoneInfo) -> datetime:
    """The first moment after a calendar day (midnight that ends it)."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)


def add_months_to_day(day: date, n: int) -> date:
    """The same day of the month ``n`` months later, clamped to the month's last day."""
    y, m = add_months((day.year, day.month), n)
    last = (date(*add_months((y, m), 1), 1) - timedelta(days=1)).day
    return date(y, m, min(day.day, last))
