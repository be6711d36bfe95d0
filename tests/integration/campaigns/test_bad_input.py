"""The campaigns routes against what a careless client or an attacker sends (issue 10, finding 4): money, dates,
offsets and cursors beyond what the service can hold answer 422 naming the field, never 500."""

from __future__ import annotations

import pytest

from tests.integration.campaigns.scenario import World
from tests.unit.campaigns import factory as f
from tests.unit.campaigns.factory import at

BODY = {"name": "Spring", "objective": "promotion", "channel": "sms", "starts_at": at(10).isoformat(),
        "ends_at": at(20).isoformat(), "control_share": "0.2", "costs": {"fixed": "10.00", "per_touch": "0.10"}}


@pytest.fixture
def world(store, tmp_path) -> World:
    w = World(store, tmp_path)
    w.feed([msg for i in range(3) for msg in (f.consent(f"c_{i}", f"cons-{i}", at(1), "sms", True),
                                              f.purchase(f"c_{i}", f"pre-{i}", at(2), "100.00"))])
    return w


def _fields(response) -> tuple[int, set[str]]:
    err = response.json()["error"]
    assert err["code"] == "invalid_request"
    return response.status_code, {d["loc"] for d in err["details"]}


def test_money_beyond_100_million_is_422_naming_the_field(world):
    for costs, loc in (({"fixed": "1e30"}, "body.costs.fixed"), ({"per_touch": "100000000.01"}, "body.costs.per_touch"),
                       ({"fixed": "NaN"}, "body.costs.fixed"), ({"fixed": "Infinity"}, "body.costs.fixed")):
        r = world.http.post("/v1/campaigns", json={**BODY, "costs": costs})
        assert _fields(r) == (422, {loc}), costs
    r = world.http.post("/v1/campaigns", json={**BODY, "audience": {"spend": {"min": "1e30"}}})
    assert _fields(r) == (422, {"body.audience.spend.min"})
    ok = world.http.post("/v1/campaigns", json={**BODY, "costs": {"fixed": "100000000.00"}})
    assert ok.status_code == 201 and ok.json()["costs"]["fixed"] == "100000000.00"
    r = world.http.patch(f"/v1/campaigns/{ok.json()['campaign_id']}", json={"costs": {"fixed": "1e30"}})
    assert _fields(r) == (422, {"body.costs.fixed"})


def test_times_outside_1900_to_2100_and_huge_counts_are_422(world):
    r = world.http.post("/v1/campaigns", json={**BODY, "starts_at": "0034-12-26T11:52:07Z"})
    assert _fields(r) == (422, {"body.starts_at"})
    r = world.http.post("/v1/campaigns", json={**BODY, "ends_at": "9999-12-31T23:59:59Z"})
    assert _fields(r) == (422, {"body.ends_at"})
    r = world.http.post("/v1/campaigns", json={**BODY, "audience": {"frequency": {"min": 2**63}}})
    assert _fields(r) == (422, {"body.audience.frequency.min"})
    r = world.http.post("/v1/analyses/event-effect", json={"event_date": "0001-01-01", "attendees": ["c_0"],
                                                           "non_attendees": ["c_1"]})
    assert _fields(r) == (422, {"body.event_date"})
    r = world.http.post("/v1/analyses/event-effect", json={"event_date": "2026-03-01", "attendees": ["x" * 201],
                                                           "non_attendees": ["c_1"]})
    assert _fields(r) == (422, {"body.attendees.0"})


def test_offsets_and_audience_cursors_beyond_what_was_issued_are_422(world):
    r = world.http.get("/v1/campaigns", params={"offset": 2**63})
    assert _fields(r) == (422, {"query.offset"})
    cid = world.http.post("/v1/campaigns", json=BODY).json()["campaign_id"]
    world.now = at(10)
    assert world.http.post(f"/v1/campaigns/{cid}/launch").status_code == 200
    page = world.http.get(f"/v1/campaigns/{cid}/audience", params={"limit": 1}).json()
    nxt = world.http.get(f"/v1/campaigns/{cid}/audience", params={"limit": 5, "cursor": page["next_cursor"]}).json()
    assert [m["member_id"] for m in page["items"] + nxt["items"]] == ["c_0", "c_1", "c_2"]
    for cursor in ("c_0", "garbage", "x" * 1001):
        r = world.http.get(f"/v1/campaigns/{cid}/audience", params={"cursor": cursor})
        assert r.status_code == 422 and r.json()["error"]["code"] in {"invalid_cursor", "invalid_request"}, cursor
    assert world.http.get(f"/v1/campaigns/{cid}/audience", params={"cursor": "c_0"}).json()["error"]["code"] == \
        "invalid_cursor"
