"""The contact cap holds across campaigns launched at the same time: a launch counts the touches another
launch committed while it was reading its audience."""

from __future__ import annotations

from services.campaigns.handlers import launch as launching
from tests.integration.campaigns.scenario import World
from tests.unit.campaigns import factory as f
from tests.unit.campaigns.factory import at

DAY_MS = 86_400_000
BODY = {"objective": "promotion", "channel": "sms", "starts_at": at(10).isoformat(), "ends_at": at(20).isoformat(),
        "control_share": "0.3"}


def test_two_launches_racing_never_put_a_customer_over_the_cap(store, tmp_path, monkeypatch):
    world = World(store, tmp_path, config={"contact_cap": 1})
    world.feed([f.consent(f"c_{i:02d}", f"cons-{i}", at(1), "sms", True) for i in range(20)])
    first, second = (world.http.post("/v1/campaigns", json={**BODY, "name": n}).json()["campaign_id"]
                     for n in ("first", "second"))
    world.now = at(10)
    deps = world.service.deps
    real = deps.store.touch_counts

    def second_commits_meanwhile(**kw):
        seen = real(**kw)
        monkeypatch.setattr(deps.store, "touch_counts", real)
        # The first launch has read its audience and the touches so far; the second launches in full now,
        # a moment later by the clock.
        world.now = at(10, hours=1)
        assert launching.launch(second, deps=deps).launched_now
        world.now = at(10)
        return seen

    monkeypatch.setattr(deps.store, "touch_counts", second_commits_meanwhile)
    assert launching.launch(first, deps=deps).launched_now
    now = world.http.get(f"/v1/campaigns/{first}").json()["launch"]
    before = world.http.get(f"/v1/campaigns/{second}").json()["launch"]
    # Everyone had consent and no touch before: the second campaign touched its treatment group, who are
    # now at the cap of one, so the first leaves them out and splits the rest.
    assert now["matched"] == 20 and now["excluded"]["contact_cap"] == before["treatment"]
    assert now["members"] == 20 - before["treatment"]
    counts = deps.store.touch_counts(since_ms=0, until_ms=at(40).timestamp() * 1000)
    assert max(counts.values()) == 1 and sum(counts.values()) == before["treatment"] + now["treatment"]
