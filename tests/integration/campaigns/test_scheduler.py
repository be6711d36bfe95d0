"""The scheduler's timer: whatever a scheduled launch runs into, the campaign gets a decided fate and the
worker keeps running (the batch runner ends the process on an error it cannot retry)."""

from __future__ import annotations

import sqlite3

import pytest

from services.campaigns.handlers.timers import run_due
from services.campaigns.store.sqlite import SqliteCampaignsStore
from tests.integration.campaigns.scenario import World
from tests.unit.campaigns import factory as f
from tests.unit.campaigns.factory import at

BODY = {"objective": "promotion", "channel": "sms", "starts_at": at(10).isoformat(), "ends_at": at(20).isoformat()}


@pytest.fixture
def world(tmp_path) -> World:
    w = World(SqliteCampaignsStore(tmp_path / "crm.campaigns.db"), tmp_path)
    w.feed([m for i in range(6) for m in (f.consent(f"c_{i}", f"cons-{i}", at(1), "sms", True),
                                          f.purchase(f"c_{i}", f"pre-{i}", at(2), "100.00"))])
    return w


def scheduled(world: World, name: str) -> str:
    cid = world.http.post("/v1/campaigns", json={**BODY, "name": name}).json()["campaign_id"]
    world.now = at(5)
    assert world.http.post(f"/v1/campaigns/{cid}/schedule").status_code == 200
    return cid


def test_an_unexpected_launch_failure_sends_that_campaign_back_to_draft_and_the_others_launch(world, monkeypatch):
    first, second = scheduled(world, "first"), scheduled(world, "second")
    store = world.service.deps.store
    real, calls = store.customer_facts, []

    def broken_once(**kw):
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("a bug met while evaluating one audience")
        return real(**kw)

    monkeypatch.setattr(store, "customer_facts", broken_once)
    world.now = at(10)
    done = run_due(deps=world.service.deps, relay=world.service.relay)
    # Due campaigns launch in start order, then id: which one met the failure is the first of the two.
    broken, fine = sorted([first, second], key=lambda c: (store.campaign(c).starts_at, c))
    assert (done.failed, done.launched) == ([broken], [fine])
    row = world.http.get(f"/v1/campaigns/{broken}").json()
    assert row["status"] == "draft" and row["last_error"] == "the launch failed unexpectedly (ValueError); see the logs"
    assert world.http.get(f"/v1/campaigns/{fine}").json()["status"] == "running"


def test_a_transient_failure_goes_to_the_runner_and_leaves_the_campaign_scheduled(world, monkeypatch):
    cid = scheduled(world, "locked")
    store = world.service.deps.store

    def locked(**kw):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store, "customer_facts", locked)
    world.now = at(10)
    with pytest.raises(sqlite3.OperationalError):
        run_due(deps=world.service.deps, relay=world.service.relay)
    assert world.http.get(f"/v1/campaigns/{cid}").json()["status"] == "scheduled"


def test_a_launch_is_relayed_before_a_later_one_in_the_same_pass_fails(world, monkeypatch):
    first, second = scheduled(world, "first"), scheduled(world, "second")
    store = world.service.deps.store
    real, calls = store.customer_facts, []

    def locked_the_second_time(**kw):
        calls.append(1)
        if len(calls) == 2:
            raise sqlite3.OperationalError("database is locked")
        return real(**kw)

    monkeypatch.setattr(store, "customer_facts", locked_the_second_time)
    world.now = at(10)
    with pytest.raises(sqlite3.OperationalError):
        run_due(deps=world.service.deps, relay=world.service.relay)
    launched, waiting = sorted([first, second], key=lambda c: (store.campaign(c).starts_at, c))
    touches = world.messages("crm.campaigns.touches")
    assert {m["campaign_id"] for m in touches} == {launched}
    assert len(touches) == world.http.get(f"/v1/campaigns/{launched}").json()["launch"]["treatment"]
    assert store.outbox_pending() == [] and world.http.get(f"/v1/campaigns/{waiting}").json()["status"] == "scheduled"


def test_a_launched_campaign_paused_when_its_end_comes_completes_like_a_running_one(world):
    paused, running = scheduled(world, "paused"), scheduled(world, "running")
    world.now = at(10)
    assert sorted(run_due(deps=world.service.deps, relay=world.service.relay).launched) == sorted([paused, running])
    assert world.http.post(f"/v1/campaigns/{paused}/pause").json()["status"] == "paused"
    world.now = at(20)
    assert sorted(run_due(deps=world.service.deps, relay=world.service.relay).completed) == sorted([paused, running])
    assert {world.http.get(f"/v1/campaigns/{c}").json()["status"] for c in (paused, running)} == {"completed"}
