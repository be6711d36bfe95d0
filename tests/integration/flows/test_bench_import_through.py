"""``crm bench import --through-services`` at a tiny size: the import is timed until every service took every
member's events, and its accounting is exact."""

from __future__ import annotations

import re

import pytest

from crm.bench.imports import through_services

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_every_imported_event_is_taken_by_every_service_before_the_import_counts_as_done(capsys):
    counts = through_services(150, lots=1.0, chunk=50, workers=0)

    # 150 profiles and 150 lots, a consent for the members whose generated file says yes or no, a tier for a third.
    assert 300 < counts["events"] <= 150 * 4
    assert counts["channel"] == counts["resolved"] == counts["events"]
    assert {s: counts[s] for s in ("loyalty", "alerts", "campaigns")} == dict.fromkeys(
        ("loyalty", "alerts", "campaigns"), counts["events"])
    out = capsys.readouterr().out
    assert f"imported 150 members: done; {counts['events']:,} events" in out
    assert "members/s through all four services" in out and "projected for 1,000,000 members" in out
    # How many batches each service handled, and so how large they were (the services' own counters).
    batches = next(line for line in out.splitlines() if line.startswith("batches handled (mean events each): "))
    handled = dict(re.findall(r"(\w+) ([\d,]+) \(", batches))
    assert set(handled) == {"identity", "loyalty", "alerts", "campaigns"}
    assert all(1 <= int(n.replace(",", "")) <= counts["events"] for n in handled.values()), batches
