"""The scheduler: due times to the millisecond, scans in units of work that consumption can interleave
with, a full scan after a rules change (also across restarts), resumed where a dead worker left it."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.alerts import scan
from shared.messages import ViewPartUpdated
from tests.integration.alerts.harness import Harness

Z = ZoneInfo("Asia/Shanghai")


def noon(d: str) -> datetime:
    return datetime.combine(date.fromisoformat(d), time(12), Z)


def balance(customer: str, points: int, version: str = "000000000001") -> ViewPartUpdated:
    return ViewPartUpdated(customer_id=customer, part="loyalty", value={"points_balance": points, "tier": None},
                           version=version)


@pytest.mark.timeout(60)
def test_a_scan_inside_the_millisecond_before_a_due_time_ends_and_the_next_one_fires_it(tmp_path):
    # Resolved 700 µs past noon: the 30-day suppression of large_balance ends 700 µs past noon, 30 days on.
    h = Harness(tmp_path, noon("2026-11-20") + timedelta(microseconds=700))
    h.feed(balance("c_ms", 6000))
    [alert] = h.alerts()
    h.api.post(f"/v1/alerts/{alert['alert_id']}/resolve", json={"note": "offered a gift set"})
    until = h.now + timedelta(days=30)
    # 500 µs before the end, in the same millisecond: not due yet (a due time truncated to the millisecond
    # made this scan find the customer due, unchanged, again and again, for ever).
    early = scan.scan(h.service.deps, as_of=until - timedelta(microseconds=500), relay=h.service.relay)
    assert early.customers == 0 and h.open_types("c_ms") == {}
    # Due at the first millisecond boundary at or after the moment (12:00:00.001 here).
    assert scan.scan(h.service.deps, as_of=until, relay=h.service.relay).customers == 0
    assert scan.scan(h.service.deps, as_of=until + timedelta(microseconds=300), relay=h.service.relay).customers == 1
    assert list(h.open_types("c_ms")) == ["large_balance"]
