"""The attendance sheet's pure rules: which sitting a moment belongs to, spend per head, months, the lines."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from services.alerts.reports.attendance import (
    OUTSIDE,
    AttendanceLine,
    SittingRow,
    month_of,
    per_head,
    sheet,
    sheet_csv,
    sitting_of,
    sittings,
)
from shared.access.stores import parse_meal_periods
from shared.contract.facts import PurchaseFact
from shared.http.errors import InvalidInput

Z = ZoneInfo("Asia/Shanghai")
PERIODS = parse_meal_periods("lunch=10:30-15:00;dinner=16:30-22:30;late=23:00-02:00", where="test")


@pytest.mark.parametrize("local, expected", [
    ("2026-11-02T10:29:59", ("2026-11-02", OUTSIDE)),
    ("2026-11-02T10:30:00", ("2026-11-02", "lunch")),  # a period starts at its start
    ("2026-11-02T14:59:59", ("2026-11-02", "lunch")),
    ("2026-11-02T15:00:00", ("2026-11-02", OUTSIDE)),  # and ends before its end
    ("2026-11-02T16:30:00", ("2026-11-02", "dinner")),
    ("2026-11-02T22:45:00", ("2026-11-02", OUTSIDE)),
    ("2026-11-02T23:30:00", ("2026-11-02", "late")),
    ("2026-11-03T01:59:00", ("2026-11-02", "late")),  # past midnight: the evening it began
    ("2026-12-01T00:30:00", ("2026-11-30", "late")),  # ... even across a month's end
    ("2026-11-03T02:00:00", ("2026-11-03", OUTSIDE)),
])
def test_the_sitting_of_a_local_moment(local, expected):
    day, name = sitting_of(datetime.fromisoformat(local).replace(tzinfo=Z), PERIODS)
    assert (day.isoformat(), name) == expected


def test_without_periods_every_moment_is_its_day():
    assert sitting_of(datetime(2026, 11, 2, 12, tzinfo=Z), ()) == (date(2026, 11, 2), OUTSIDE)


def test_sittings_are_read_in_the_store_s_timezone_and_skip_purchases_naming_no_store():
    moment = datetime(2026, 11, 2, 4, 30, tzinfo=ZoneInfo("UTC"))  # 12:30 in Shanghai, 13:30 in Tokyo
    facts = [PurchaseFact("pos/a", "1", "r", "o1", 100, "BJ-01", int(moment.timestamp() * 1000), "2026-11-02",
                          covers=2),
             PurchaseFact("pos/a", "2", "r", "o2", 100, None, int(moment.timestamp() * 1000), "2026-11-02")]
    periods = parse_meal_periods("lunch=10:30-13:00", where="test")
    shanghai = sittings(facts, periods_of=lambda s: periods, zone_of=lambda s: Z)
    tokyo = sittings(facts, periods_of=lambda s: periods, zone_of=lambda s: ZoneInfo("Asia/Tokyo"))
    assert [(x.day, x.sitting, x.covers) for x in shanghai] == [("2026-11-02", "lunch", 2)]
    assert [(x.day, x.sitting) for x in tokyo] == [("2026-11-02", OUTSIDE)]


@pytest.mark.parametrize("spend, covers, expected", [
    (482000, 64, "75.31"),  # 75.3125: the material's row
    (100, 8, "0.12"),  # 0.125: half to even, down
    (300, 8, "0.38"),  # 0.375: half to even, up
    (100000, 3, "333.33"),
    (0, 4, "0.00"),
])
def test_spend_per_head_is_exact_then_rounded_half_to_even(spend, covers, expected):
    assert per_head(spend, covers) == Decimal(expected)


def test_no_covers_no_spend_per_head():
    assert per_head(1000, None) is None and per_head(1000, 0) is None


def test_months():
    assert month_of("2026-12") == (date(2026, 12, 1), date(2027, 1, 1))
    assert month_of("2024-02") == (date(2024, 2, 1), date(2024, 3, 1))
    assert month_of("9998-12") == (date(9998, 12, 1), date(9999, 1, 1))
    for bad in ("2026-00", "2026-13", "26-11", "2026-11-01", "1899-12", "9999-12", "２０２６-11", "2026-11\n", None):
        with pytest.raises(InvalidInput) as caught:
            month_of(bad)
        assert caught.value.code == "invalid_month" and caught.value.details == {"parameter": "month"}


def test_lines_join_a_customer_s_records_in_one_sitting_and_keep_refunds_from_going_below_zero():
    rows = [SittingRow("r1", "2026-11-02", "lunch", 1, 30000, 0, 3),
            SittingRow("r2", "2026-11-02", "lunch", 2, 20000, 5000, 4),  # the same sitting, another record
            SittingRow("r2", "2026-11-02", "", 1, 1000, 0, None),
            SittingRow("r3", "2026-11-03", "dinner", 1, 5000, 8000, 2)]  # refunded more than it spent
    lines = sheet(rows, customer_of={"r1": "c1", "r2": "c1", "r3": "c3"}, tiers={"c1": "A"})
    assert lines == [AttendanceLine("c1", 2, 4, 46000, 4, Decimal("112.50"), "A"),  # 45,000 fen over 4 heads
                     AttendanceLine("c3", 1, 1, 0, 2, Decimal("0.00"), None)]
    assert sheet_csv(lines) == ("customer_id,visits,orders,spend,covers,spend_per_head,tier\n"
                                "c1,2,4,460.00,4,112.50,A\nc3,1,1,0.00,2,0.00,\n")


def test_equal_spenders_are_listed_by_customer_id():
    rows = [SittingRow("r_b", "2026-11-02", "", 1, 100, 0, None), SittingRow("r_a", "2026-11-02", "", 1, 100, 0, None)]
    assert [x.customer_id for x in sheet(rows, customer_of={}, tiers={})] == ["r_a", "r_b"]
