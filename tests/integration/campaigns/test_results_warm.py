"""Issue 16: a campaigns worker measures, as it starts, the results of the campaigns a person is likely to open,
so the first request of a fresh process measures nothing; while people read results a timer brings them forward
off the batch thread, exactly (on both store adapters)."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import timedelta

from services.campaigns import agents
from services.campaigns.handlers import commands, kept_results, reports
from tests.integration.campaigns.scenario import World
from tests.integration.campaigns.test_results_kept import NOW, History, measured_afresh
from tests.integration.faust_stub import RecordingFaust


def test_a_worker_keeps_results_from_the_start_and_current_while_people_read_them(store, tmp_path, monkeypatch):
    history = History(store, tmp_path, random.Random(5))
    running = history.launch("spring", follow_up=True)
    paused = history.launch("summer", follow_up=False)
    old = history.launch("winter", follow_up=False)
    deps = history.deps
    commands.move(paused, action="pause", deps=deps)
    # Completed, its results window over 30 days before: nobody is likely to open it.
    with store.transaction():
        store.update_campaign(old, expect_status="running", status="completed", updated_at="2026-06-01T00:00:00Z")
    world = World(store, tmp_path, now=NOW + timedelta(days=50))
    service, app = world.service, RecordingFaust()
    agents.register(app, service)
    measured: list[list[str]] = []
    measure = kept_results._measure
    monkeypatch.setattr(kept_results, "_measure", lambda c, customers, *a, **kw: measured.append(
        c.row.id) or measure(c, customers, *a, **kw))

    for task in app.tasks:  # what the worker runs as it starts, before any request
        asyncio.run(task())
    assert sorted(measured) == sorted([running, paused])
    measured.clear()
    got = world.http.get(f"/v1/campaigns/{running}/results")
    assert got.status_code == 200 and got.json()["overall"]["treatment"]["size"] > 0
    assert measured == []  # the first request measured nothing: it answered with what the worker kept
    # A store's scope is its members' parts of the whole campaign's kept results, exactly: nothing measured.
    s01 = frozenset({"S01"})
    got = reports.results(running, deps=service.deps, owned_by=s01).report
    assert got == measured_afresh(store, running, attribution=deps.config.attribution, owned_by=s01)
    assert measured == [] and 0 < got.overall.treatment.size < reports.results(
        running, deps=service.deps).report.overall.treatment.size

    _, keep = app.timers["campaigns.results"]
    for n in range(8):
        history.step(running)  # a write between two ticks is in the next read, exactly
        for scope in (None, s01):
            got = reports.results(running, deps=service.deps, owned_by=scope).report
            assert got == measured_afresh(store, running, attribution=deps.config.attribution, owned_by=scope), n
    history.step(running)
    history.step(paused)
    asyncio.run(keep())  # people read results: the tick brings both forward
    measured.clear()
    for cid in (running, paused):
        got = reports.results(cid, deps=service.deps).report
        assert got == measured_afresh(store, cid, attribution=deps.config.attribution, owned_by=None)
    assert measured == []

    kept_results._READ_AT[store] = time.monotonic() - service.deps.config.results_keep_s - 1  # nobody read
    history.step(running)
    asyncio.run(keep())
    assert measured == []  # left for the next request
