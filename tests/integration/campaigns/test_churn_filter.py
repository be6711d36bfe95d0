"""The churn-model filter: the audience holds exactly the customers whose BG/NBD probability of being
still active falls in the range, as a direct fit of the model on the same purchase days says."""

from __future__ import annotations

import random
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.campaigns.store.sqlite import SqliteCampaignsStore
from shared.churn import fit, histories
from tests.integration.campaigns.scenario import World
from tests.unit.campaigns import factory as f
from tests.unit.campaigns.factory import at

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_p_alive_range_selects_exactly_the_customers_the_model_gives_up_on(tmp_path):
    world = World(SqliteCampaignsStore(tmp_path / "crm.campaigns.db"), tmp_path)
    launch = at(0)
    start = launch.astimezone(SHANGHAI).date() - timedelta(days=400)
    rng = random.Random(3)
    days: dict[str, set] = {}
    msgs = []
    for i in range(200):
        # The model's own story: each customer buys at their own rate and may drop out after any purchase.
        rate, dropout = rng.gammavariate(1.0, 1 / 20), rng.betavariate(1.0, 4.0)
        t = float(rng.randrange(0, 200))
        seen = [int(t)]
        while True:
            t += rng.expovariate(rate)
            if t >= 400:
                break
            seen.append(int(t))
            if rng.random() < dropout:
                break
        cid = f"c_{i:03d}"
        days[cid] = {start + timedelta(days=d) for d in seen}
        for k, d in enumerate(seen):
            when = datetime.combine(start + timedelta(days=d), time(12), SHANGHAI)
            msgs.append(f.purchase(cid, f"{cid}-{k}", when, "10.00"))
        msgs.append(f.consent(cid, f"cons-{i}", at(-1), "sms", True))
    world.feed(msgs)

    rows = histories(days, launch.astimezone(SHANGHAI).date())
    model = fit(rows, launch.astimezone(SHANGHAI).date())
    p_alive = dict(zip(rows, model.p_alive(list(rows.values())), strict=True))
    expected = {c for c, p in p_alive.items() if 0.05 <= p <= 0.5}
    assert 20 < len(expected) < 180
    assert all(rows[c].frequency > 0 for c in expected)  # a single purchase gives nothing to lapse from

    r = world.http.post("/v1/campaigns", json={"name": "win back", "objective": "winback", "channel": "sms",
                                               "starts_at": at(0).isoformat(), "ends_at": at(10).isoformat(),
                                               "audience": {"p_alive": {"min": 0.05, "max": 0.5}}})
    cid = r.json()["campaign_id"]
    world.now = launch
    assert world.http.post(f"/v1/campaigns/{cid}/launch").json()["launch"]["matched"] == len(expected)
    members = world.http.get(f"/v1/campaigns/{cid}/audience", params={"limit": 1000}).json()["items"]
    assert {m["member_id"] for m in members} == expected
