"""A launch's messages are relayed in chunks after the response, while the shared outbox sweeper (which
resends rows older than 15 s) keeps running: no message may go out twice, none may be left behind."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from services.campaigns import agents
from services.campaigns.handlers import timers
from services.campaigns.handlers.outbox import Leased, relay_leased
from shared.storage.base import OutboxMessage
from tests.integration.campaigns.scenario import World
from tests.integration.faust_stub import RecordingFaust
from tests.unit.campaigns import factory as f
from tests.unit.campaigns.factory import at

BODY = {"name": "Spring", "objective": "promotion", "channel": "sms", "starts_at": at(10).isoformat(),
        "ends_at": at(20).isoformat(), "control_share": "0.2", "bonus_multiplier": "1.5"}
CUSTOMERS = 30


def _age_outbox(store, seconds: int) -> None:
    """Make every queued row look ``seconds`` older (the sweeper only takes rows older than 15 s)."""
    if hasattr(store, "db"):
        with store.transaction() as c:
            c.execute("UPDATE outbox SET created_ms = created_ms - ?", (seconds * 1000,))
    else:
        store.mdb["outbox"].update_many({}, {"$inc": {"created_ms": -seconds * 1000}})


@pytest.fixture
def world(store, tmp_path, monkeypatch) -> World:
    w = World(store, tmp_path, config={"relay_chunk": 7})
    w.feed([m for i in range(CUSTOMERS) for m in (f.consent(f"c_{i:03d}", f"cons-{i}", at(1), "sms", True),
                                                  f.purchase(f"c_{i:03d}", f"pre-{i}", at(2), "100.00"))])
    # The sweeper exactly as the shared housekeeping runs it, over what campaigns' agents give it to read.
    wired: dict = {}
    monkeypatch.setattr(agents, "register_housekeeping", lambda app, **kw: wired.update(kw))
    agents.register(RecordingFaust(), w.service)

    def sweep() -> int:
        pending = wired["outbox_pending"](limit=5000, older_than_s=15.0)
        w.service.relay(pending)
        return len(pending)

    w.sweep = sweep
    return w


def _sweep_midway(world: World) -> list[int]:
    """While the first chunk is on its way, 60 s pass and the sweeper runs."""
    swept: list[int] = []

    def during(out: list) -> None:
        if world.on_publish is during:
            world.on_publish = None  # once
            _age_outbox(world.service.deps.store, 60)
            swept.append(world.sweep())

    world.on_publish = during
    return swept


def _sent_once(world: World) -> Counter:
    sent = Counter((m.topic, m.key, m.value) for m in world.published)
    assert [k for k, n in sent.items() if n > 1] == [], "a message was published twice"
    assert world.service.deps.store.outbox_pending() == [], "a message was left in the outbox"
    return Counter(t for t, _, _ in sent)


def test_a_launch_relayed_after_the_response_and_the_sweeper_never_send_a_message_twice(world):
    cid = world.http.post("/v1/campaigns", json=BODY).json()["campaign_id"]
    swept = _sweep_midway(world)
    world.now = at(10)
    launched = world.http.post(f"/v1/campaigns/{cid}/launch").json()["launch"]
    assert swept == [0]  # the launch's rows are leased to its relay: nothing for the sweeper
    treated = launched["treatment"]
    # The events topic also carries the audit entry of the launch, a person's act (issue 12).
    assert _sent_once(world) == {"crm.campaigns.touches": treated, "crm.campaigns.events": treated + CUSTOMERS + 1}
    # Once the relay is done its lease is gone: a later row left behind is the sweeper's again.
    with world.service.deps.store.transaction():
        world.service.deps.store.outbox_add([OutboxMessage("crm.campaigns.touches", b"left behind", b"c_000")])
    _age_outbox(world.service.deps.store, 60)
    assert world.sweep() == 1


def test_a_cancellation_withdraws_each_bonus_once_while_the_sweeper_runs(world):
    cid = world.http.post("/v1/campaigns", json=BODY).json()["campaign_id"]
    world.now = at(10)
    treated = world.http.post(f"/v1/campaigns/{cid}/launch").json()["launch"]["treatment"]
    world.published.clear()
    swept = _sweep_midway(world)
    assert world.http.post(f"/v1/campaigns/{cid}/cancel").json()["status"] == "cancelled"
    assert swept == [0]
    assert _sent_once(world) == {"crm.campaigns.events": treated + 1}  # and the cancellation's audit entry


def test_a_scheduled_launch_is_relayed_under_its_lease_too(world):
    cid = world.http.post("/v1/campaigns", json=BODY).json()["campaign_id"]
    world.now = at(5)
    world.http.post(f"/v1/campaigns/{cid}/schedule")
    swept = _sweep_midway(world)
    world.now = at(10)
    done = timers.run_due(deps=world.service.deps, relay=world.service.relay)
    assert done.launched == [cid] and done.outbox == [] and swept == [0]
    treated = world.http.get(f"/v1/campaigns/{cid}").json()["launch"]["treatment"]
    # The schedule was a person's act (one audit entry); the launch at its time is not.
    assert _sent_once(world) == {"crm.campaigns.touches": treated, "crm.campaigns.events": treated + CUSTOMERS + 1}


def test_a_relay_whose_lease_ran_out_stops_and_the_sweeper_sends_the_rest_once(world):
    store = world.service.deps.store
    now = int(time.time() * 1000)
    with store.transaction():
        queued = store.outbox_add([OutboxMessage("crm.campaigns.touches", f"m{i}".encode(), b"c") for i in range(3)])
        stalled = Leased(queued, store.outbox_lease(queued, until_ms=now - 1))
    assert relay_leased(stalled, deps=world.service.deps, relay=world.service.relay) == 0
    assert world.published == []
    _age_outbox(store, 60)
    assert world.sweep() == 3
    assert _sent_once(world) == {"crm.campaigns.touches": 3}
