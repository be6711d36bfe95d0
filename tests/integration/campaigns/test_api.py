"""The campaigns API as an ops tool uses it: validation, roles, drafts, states, the scheduler, exports."""

from __future__ import annotations

import csv
import io
import threading

import pytest

from services.campaigns.handlers.timers import run_due
from services.campaigns.store.sqlite import SqliteCampaignsStore
from tests.integration.campaigns.scenario import World
from tests.unit.campaigns import factory as f
from tests.unit.campaigns.factory import at

BODY = {"name": "Spring", "objective": "promotion", "channel": "sms", "starts_at": at(10).isoformat(),
        "ends_at": at(20).isoformat(), "control_share": "0.2", "bonus_multiplier": "1.5",
        "costs": {"fixed": "10.00", "per_touch": "0.10"}}


@pytest.fixture
def world(tmp_path) -> World:
    w = World(SqliteCampaignsStore(tmp_path / "crm.campaigns.db"), tmp_path)
    msgs = []
    for i in range(30):
        cid = f"c_{i:03d}"
        msgs += [f.consent(cid, f"cons-{i}", at(1), "sms", True),
                 f.profile(cid, f"prof-{i}", at(1), city="Shanghai" if i < 20 else "Beijing"),
                 f.purchase(cid, f"pre-{i}", at(2), "100.00")]
    w.feed(msgs)
    return w


def create(world: World, **changes) -> str:
    r = world.http.post("/v1/campaigns", json={**BODY, **changes})
    assert r.status_code == 201, r.text
    return r.json()["campaign_id"]


def test_validation_errors_are_422_with_the_fields_at_fault(world):
    r = world.http.post("/v1/campaigns", json={**BODY, "ends_at": at(5).isoformat(), "control_share": "0",
                                               "audience": {"frequency": {"min": 5, "max": 1}, "tiers": []}})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_request"
    assert {d["loc"] for d in err["details"]} == {"body.ends_at", "body.control_share",
                                                  "body.audience.frequency.max", "body.audience.tiers"}
    assert "ends_at must be after starts_at" in " ".join(d["msg"] for d in err["details"])


def test_roles_and_keys(world):
    assert world.http.post("/v1/campaigns", json=BODY, headers={"Authorization": "Bearer rd"}).status_code == 403
    assert world.http.get("/v1/campaigns", headers={"Authorization": ""}).status_code == 401
    cid = create(world)
    reader = {"Authorization": "Bearer rd"}
    assert world.http.get(f"/v1/campaigns/{cid}", headers=reader).status_code == 200
    assert world.http.post(f"/v1/campaigns/{cid}/launch", headers=reader).status_code == 403


def test_only_drafts_can_be_edited_and_edits_are_validated_as_a_whole(world):
    cid = create(world)
    r = world.http.patch(f"/v1/campaigns/{cid}", json={"name": "Spring 2", "audience": {"cities": ["Shanghai"]}})
    assert r.status_code == 200 and r.json()["name"] == "Spring 2" and r.json()["audience"]["cities"] == ["Shanghai"]
    r = world.http.patch(f"/v1/campaigns/{cid}", json={"starts_at": at(30).isoformat()})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["loc"] == "body.ends_at"
    assert world.http.patch(f"/v1/campaigns/{cid}", json={"colour": "red"}).status_code == 422
    assert world.http.patch(f"/v1/campaigns/{cid}", json={"bonus_multiplier": None}).json()["bonus_multiplier"] is None
    world.now = at(10)
    assert world.http.post(f"/v1/campaigns/{cid}/launch").status_code == 200
    r = world.http.patch(f"/v1/campaigns/{cid}", json={"name": "late"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "not_a_draft"


def test_the_same_idempotency_key_returns_the_same_campaign(world):
    first = world.http.post("/v1/campaigns", json=BODY, headers={"Idempotency-Key": "k-1"})
    again = world.http.post("/v1/campaigns", json=BODY, headers={"Idempotency-Key": "k-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["campaign_id"] == again.json()["campaign_id"]
    other = world.http.post("/v1/campaigns", json={**BODY, "name": "x"}, headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert world.http.get("/v1/campaigns").json()["total"] == 1


def test_states_through_the_api(world):
    cid = create(world)
    assert world.http.get(f"/v1/campaigns/{cid}/results").json()["error"]["code"] == "not_launched"
    world.now = at(5)
    for action, status in [("schedule", "scheduled"), ("pause", "paused"), ("resume", "scheduled"),
                           ("unschedule", "draft"), ("launch", "running"), ("pause", "paused"),
                           ("resume", "running"), ("complete", "completed")]:
        r = world.http.post(f"/v1/campaigns/{cid}/{action}")
        assert (r.status_code, r.json()["status"]) == (200, status), (action, r.text)
    r = world.http.post(f"/v1/campaigns/{cid}/cancel")
    assert r.status_code == 409 and "cannot cancel a completed campaign" in r.json()["error"]["message"]
    assert world.http.get("/v1/campaigns", params={"status": "completed"}).json()["total"] == 1
    assert world.http.get("/v1/campaigns/nope").status_code == 404


def test_launching_again_returns_the_same_launch_and_sends_nothing(world):
    cid = create(world)
    world.now = at(10)
    first = world.http.post(f"/v1/campaigns/{cid}/launch").json()
    sent = len(world.published)
    world.now = at(11)
    again = world.http.post(f"/v1/campaigns/{cid}/launch")
    assert again.status_code == 200 and again.json() == first
    assert len(world.published) == sent
    assert first["launch"]["members"] == 30 and first["launch"]["bonus_grants"] == first["launch"]["treatment"]


def test_preview_tells_what_a_launch_would_do(world):
    cid = create(world, audience={"cities": ["Shanghai"]})
    world.now = at(10)
    preview = world.http.get(f"/v1/campaigns/{cid}/preview").json()
    assert world.published == [] and world.http.get(f"/v1/campaigns/{cid}").json()["status"] == "draft"
    launched = world.http.post(f"/v1/campaigns/{cid}/launch").json()["launch"]
    assert preview == launched and preview["matched"] == 20


def test_the_scheduler_launches_at_the_start_once_however_many_workers_run_it(world, tmp_path):
    cid = create(world)
    world.now = at(5)
    assert world.http.post(f"/v1/campaigns/{cid}/schedule").status_code == 200
    world.now = at(9)
    assert run_due(deps=world.service.deps, relay=world.service.relay).launched == []
    # Two workers on the same store file reach the start time together.
    second = World(SqliteCampaignsStore(tmp_path / "crm.campaigns.db"), tmp_path)
    world.now = second.now = at(10)
    done = []
    threads = [threading.Thread(target=lambda w=w: done.append(run_due(deps=w.service.deps, relay=w.service.relay)))
               for w in (world, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(d.launched) for d in done) == [0, 1]
    row = world.http.get(f"/v1/campaigns/{cid}").json()
    assert row["status"] == "running" and row["launched_at"] == "2026-03-11T04:00:00.000000Z"
    assert world.service.deps.store.touch_count(cid) == row["launch"]["treatment"]
    world.now = at(20)
    assert run_due(deps=world.service.deps, relay=world.service.relay).completed == [cid]
    assert world.http.get(f"/v1/campaigns/{cid}").json()["status"] == "completed"


def test_a_scheduled_launch_that_cannot_happen_goes_back_to_draft_with_the_reason(world):
    # Every customer bought once: no repeat purchases, so no churn model can be fitted.
    cid = create(world, audience={"p_alive": {"min": 0.5}})
    world.now = at(5)
    world.http.post(f"/v1/campaigns/{cid}/schedule")
    world.now = at(10)
    assert run_due(deps=world.service.deps, relay=world.service.relay).failed == [cid]
    row = world.http.get(f"/v1/campaigns/{cid}").json()
    assert row["status"] == "draft" and "churn model" in row["last_error"]


def test_cancelling_a_launched_campaign_withdraws_its_bonus(world):
    cid = create(world)
    world.now = at(10)
    launched = world.http.post(f"/v1/campaigns/{cid}/launch").json()["launch"]
    world.now = at(12)
    assert world.http.post(f"/v1/campaigns/{cid}/cancel").json()["status"] == "cancelled"
    grants = [m for m in world.messages("crm.campaigns.events") if m["kind"] == "campaign.bonus"]
    granted = {m["grant_id"] for m in grants if m["active"]}
    withdrawn = {m["grant_id"] for m in grants if not m["active"]}
    assert len(granted) == launched["treatment"] and withdrawn == granted


def test_audience_pages_cover_every_member_once(world):
    cid = create(world)
    world.now = at(10)
    world.http.post(f"/v1/campaigns/{cid}/launch")
    seen, cursor = [], None
    while True:
        page = world.http.get(f"/v1/campaigns/{cid}/audience", params={"limit": 7, "cursor": cursor}).json()
        seen += [m["member_id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"c_{i:03d}" for i in range(30)] and page["total"] == 30
    control = world.http.get(f"/v1/campaigns/{cid}/audience", params={"group": "control", "limit": 100}).json()
    assert control["total"] == len(control["items"]) and {m["group"] for m in control["items"]} == {"control"}


def test_csv_exports(world):
    cid = create(world, audience={"cities": ["Shanghai"]})
    world.now = at(10)
    world.http.post(f"/v1/campaigns/{cid}/launch")
    world.feed([f.purchase(f"c_{i:03d}", f"buy-{i}", at(11), "50.00") for i in range(0, 20, 2)])
    json_results = world.http.get(f"/v1/campaigns/{cid}/results").json()
    r = world.http.get(f"/v1/campaigns/{cid}/results.csv")
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    overall = {row["group"]: row for row in rows if row["breakdown"] == "overall"}
    t = json_results["overall"]["treatment"]
    assert (int(overall["treatment"]["size"]), int(overall["treatment"]["converters"]),
            overall["treatment"]["revenue"]) == (t["size"], t["converters"], t["revenue"])
    assert {row["breakdown"] for row in rows} == {"overall", "tier", "age_band", "home_store", "purchases_before",
                                                  "touches_before"}
    # 20 members, the treatment's share of the cost: 10.00 + 0.10 per touch.
    assert overall["treatment"]["cost"] == json_results["cost"]["total"]
    # The CSV leaves a figure blank where the JSON has none (groups are drawn per campaign id, so a run can
    # have no ROI to report).
    assert overall["treatment"]["roi"] == ("" if json_results["roi"] is None else json_results["roi"])
    daily = list(csv.DictReader(io.StringIO(world.http.get(f"/v1/campaigns/{cid}/daily.csv").text)))
    assert sum(int(d["orders"]) for d in daily) == 10 and {d["day"] for d in daily} == {"2026-03-12"}
    # Every member had bought before the launch: all their orders are returning customers' orders.
    assert [(int(d["new_orders"]), int(d["returning_orders"])) for d in daily] == [
        (0, int(d["orders"])) for d in daily]


def test_event_effect_route_with_a_list_or_a_segment(world):
    world.feed([f.purchase(f"c_{i:03d}", f"after-{i}", at(20), "80.00") for i in range(0, 4)])
    body = {"event_date": "2026-03-15", "attendees": ["c_000", "c_001"], "window_days": 30}
    listed = world.http.post("/v1/analyses/event-effect", json={**body, "non_attendees": ["c_002", "c_005"]})
    assert listed.status_code == 200, listed.text
    got = listed.json()
    assert got["attendees"]["before"]["spend_per_customer"] == "100.00"
    assert got["attendees"]["after"]["spend_per_customer"] == "80.00"
    assert got["non_attendees"]["after"]["spend_per_customer"] == "40.00"  # c_002 bought, c_005 did not
    assert got["difference_in_differences"]["spend_per_customer"] == "40.00"  # -20 - (-60)
    segment = world.http.post("/v1/analyses/event-effect", json={**body, "comparison": {"cities": ["Beijing"]}})
    assert segment.json()["non_attendees"]["customers"] == 10
    both = world.http.post("/v1/analyses/event-effect", json={**body, "non_attendees": ["c_002"],
                                                              "comparison": {"cities": ["Beijing"]}})
    assert both.status_code == 422
