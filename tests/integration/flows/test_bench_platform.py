"""``crm bench platform`` at a tiny size: it finishes, and its accounting is exact in every service."""

from __future__ import annotations

import math

import pytest

from crm.bench.whole_platform import DOWNSTREAM, SERVICES, run

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_every_published_event_is_done_in_every_service_and_every_probe_is_timed(capsys):
    # Two identity workers (crm up's default where the machine has more than two cores): the accounting must
    # hold when they share the work.
    [figures] = run(events=300, runs=1, rates=[500], customers=100, load_seconds=0.4,
                    workers={"identity": 2, "loyalty": 1, "alerts": 1, "campaigns": 1})

    full, paced = figures.phases
    assert (full.name, full.events, paced.name, paced.events) == ("full speed", 300, "500/s", 200)
    # The base (one profile per customer) and both phases: each event resolved once, nothing dead-lettered,
    # and each downstream service consumed exactly the customer events identity resolved.
    assert figures.published == 100 + 300 + 200
    counts = paced.counts
    assert counts["channel"] == counts["resolved"] == 600
    assert {s: counts[s] for s in DOWNSTREAM} == {s: 600 for s in DOWNSTREAM}
    for phase in (full, paced):
        assert phase.sent == phase.events // 10  # one probe in ten
        assert phase.probes == {s: phase.sent for s in SERVICES}  # each traced through every service
        # ... and timed to the end of its batch's span in every service (the batch holds a traced event)
        assert phase.fell_back == {s: 0 for s in SERVICES}
        assert all(0 < phase.p50[s] <= phase.p99[s] for s in SERVICES)
        assert all(phase.cpu_per_1k[s] > 0 for s in SERVICES) and phase.eps > 0
        # Every service took at least the phase's events, in batches it timed; identity's include the view
        # parts it consumes, and the downstream services' whatever else they listen to.
        for s in SERVICES:
            b = phase.batches[s]
            assert b.messages >= phase.events and b.count >= 1 and b.seconds > 0
    assert figures.bare_eps > 0 and not math.isnan(figures.bare_eps)
    assert sorted(figures.rss_mb) == ["alerts", "broker", "campaigns", "identity", "identity-1", "loyalty"]
    assert all(30 < mb < 2000 for w, mb in figures.rss_mb.items() if w != "broker") and figures.rss_mb["broker"] > 0
    out = capsys.readouterr().out
    assert "run 1 full speed: 300 events" in out and "platform/bare" in out
    identity_batches = full.batches["identity"].count
    assert f"run 1 full speed: batches, timer runs included (messages, wall ms each) identity {identity_batches:,} (" \
        in out
    assert "accounts: 600 channel events published, identity consumed 600 and resolved 600" in out
