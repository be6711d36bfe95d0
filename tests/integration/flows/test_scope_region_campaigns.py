"""Issue 12, scoped access to campaigns: a key scoped to a region defines, edits, launches and measures the
campaigns whose audience is confined to its region (every ``audience.home_stores`` in it); any other campaign
answers it as an unknown id, and its list shows only its own. A store-scoped key still does none of it, and a
company-wide key still sees and does everything."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from services.campaigns.handlers.reports import CSV_COLUMNS
from shared.settings import Settings
from tests.integration.flows.support import ADMIN, OPERATOR, READER, Flow, at, event, new_phone, purchase, running_flow

pytestmark = pytest.mark.broker

EAST_KEY, S01_KEY = "scope-east-operator", "scope-s01-operator"
STORES = """store_id,name,region,timezone
S01,Jing'an,east,Asia/Shanghai
S02,Xuhui,east,Asia/Shanghai
S03,Chaoyang,west,Asia/Shanghai
"""
UNKNOWN_CAMPAIGN = "cmp_" + "0" * 20


def campaign(name: str, **audience: Any) -> dict[str, Any]:
    """A campaign definition over ``audience``."""
    return {"name": name, "objective": "promotion", "channel": "sms", "audience": audience,
            "offer": {"text": "tea on us"}, "starts_at": "2026-11-20T00:00:00+08:00",
            "ends_at": "2026-11-30T00:00:00+08:00", "control_share": "0.5", "attribution_window_days": 14}


@pytest.fixture
def flow(broker, tmp_path) -> Iterator[Flow]:
    """The four services with a stores registry (S01, S02 in east, S03 in west), an east operator key and a
    store S01 operator key beside the company-wide keys."""
    (tmp_path / "stores.csv").write_text(STORES)
    settings = Settings(_env_file=None, kafka_bootstrap=broker, data_dir=str(tmp_path),
                        api_keys=f"{ADMIN}:admin,{OPERATOR}:operator,{READER}:reader,"
                                 f"{EAST_KEY}:operator@region=east,{S01_KEY}:operator@store=S01",
                        pseudonym_secret="region-test-secret-0123456789", stores_file=str(tmp_path / "stores.csv"),
                        token_secret="region-test-token-secret-0123456789")
    with running_flow(settings) as flow:
        yield flow


def customers(flow: Flow) -> dict[str, str]:
    """Two customers at S01, one at S02 (east) and one at S03 (west), each consenting to SMS."""
    flow.set_clocks(at("2026-11-20T12:00"))
    store = {"a": "S01", "a2": "S01", "b": "S02", "c": "S03"}
    phones = {n: new_phone() for n in store}
    flow.ingest(*(e for n, p in phones.items() for e in (
        event("crm.consent", at("2026-11-01T09:00"), {"phone": p}, purpose="sms", granted=True),
        purchase({"phone": p}, at("2026-11-02T10:00"), "90.00", store=store[n]))))
    return {n: flow.customer_id(phone=p) for n, p in phones.items()}


def test_a_region_key_runs_the_campaigns_confined_to_its_region_and_no_other(flow: Flow):
    ids = customers(flow)
    east = flow.platform["campaigns"].api(EAST_KEY)
    everyone = flow.platform["campaigns"].api(READER)

    # Defined and launched by the region, over its own stores only.
    r = east.post("/v1/campaigns", json=campaign("East tea", home_stores=["S01", "S02"]))
    assert r.status_code == 201, r.text
    mine = r.json()["campaign_id"]
    assert east.get(f"/v1/campaigns/{mine}/preview").json()["matched"] == 3
    r = east.post(f"/v1/campaigns/{mine}/launch")
    assert (r.status_code, r.json()["status"], r.json()["launch"]["members"]) == (200, "running", 3)
    flow.platform.settle()

    # An audience reaching outside the region, or not confined at all: 403 naming the stores outside.
    r = east.post("/v1/campaigns", json=campaign("Too wide", home_stores=["S01", "S03", "S09"]))
    assert r.status_code == 403
    assert r.json() == {"error": {"code": "forbidden_scope",
                                  "message": "audience.home_stores outside region east: S03, S09",
                                  "details": {"stores_outside": ["S03", "S09"]}}}
    r = east.post("/v1/campaigns", json=campaign("Everyone", tiers=["A"]))
    assert r.status_code == 403
    assert r.json()["error"] == {"code": "forbidden_scope", "message": "a key scoped to region east must give "
                                 "audience.home_stores, every one in its region"}

    # A company-wide campaign, launched by a company-wide operator.
    r = flow.campaigns.post("/v1/campaigns", json=campaign("Everyone"))
    assert r.status_code == 201, r.text
    theirs = r.json()["campaign_id"]
    r = flow.campaigns.post(f"/v1/campaigns/{theirs}/launch")
    assert (r.status_code, r.json()["launch"]["members"]) == (200, 4)
    flow.platform.settle()

    # The region measures its own campaign.
    r = east.get(f"/v1/campaigns/{mine}/results")
    assert (r.status_code, r.json()["campaign_id"], r.json()["launch"]["members"]) == (200, mine, 3)
    r = east.get(f"/v1/campaigns/{mine}/results.csv")
    assert r.status_code == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.text.splitlines()[0] == ",".join(CSV_COLUMNS)
    assert east.get(f"/v1/campaigns/{mine}/daily.csv").status_code == 200
    audience = east.get(f"/v1/campaigns/{mine}/audience").json()
    assert sorted(m["member_id"] for m in audience["items"]) == sorted([ids["a"], ids["a2"], ids["b"]])

    # The company-wide campaign answers it exactly as an unknown id, on every campaign route.
    for method, path, body in (("GET", "", None), ("GET", "/results", None), ("GET", "/results.csv", None),
                               ("GET", "/daily.csv", None), ("GET", "/preview", None), ("GET", "/audience", None),
                               ("PATCH", "", {"name": "renamed"}), ("POST", "/launch", None),
                               ("POST", "/pause", None), ("POST", "/cancel", None)):
        unknown = east.request(method, f"/v1/campaigns/{UNKNOWN_CAMPAIGN}{path}", json=body)
        other = east.request(method, f"/v1/campaigns/{theirs}{path}", json=body)
        assert unknown.status_code == 404, (method, path, unknown.text)
        assert (other.status_code, other.json()) == (404, unknown.json()), (method, path)

    # Lists: the region sees its own campaign only; a company-wide reader sees both and measures both.
    page = east.get("/v1/campaigns").json()
    assert ([c["campaign_id"] for c in page["items"]], page["total"]) == ([mine], 1)
    assert east.get("/v1/campaigns", params={"status": "running"}).json()["total"] == 1
    page = everyone.get("/v1/campaigns").json()
    assert (sorted(c["campaign_id"] for c in page["items"]), page["total"]) == (sorted([mine, theirs]), 2)
    for cid, members in ((mine, 3), (theirs, 4)):
        r = everyone.get(f"/v1/campaigns/{cid}/results")
        assert (r.status_code, r.json()["launch"]["members"]) == (200, members)
        assert everyone.get(f"/v1/campaigns/{cid}/results.csv").status_code == 200

    # The event-effect analysis stays company-wide.
    r = east.post("/v1/analyses/event-effect",
                  json={"event_date": "2026-11-10", "attendees": [ids["a"]], "non_attendees": [ids["b"]]})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden_scope")


def test_a_region_key_edits_its_drafts_but_cannot_take_them_out_of_its_region(flow: Flow):
    flow.set_clocks(at("2026-11-20T12:00"))
    east = flow.platform["campaigns"].api(EAST_KEY)
    r = east.post("/v1/campaigns", json=campaign("Draft", home_stores=["S01"]))
    assert r.status_code == 201, r.text
    draft = r.json()["campaign_id"]

    r = east.patch(f"/v1/campaigns/{draft}", json={"audience": {"home_stores": ["S02", "S03"]}})
    assert (r.status_code, r.json()["error"]["details"]) == (403, {"stores_outside": ["S03"]})
    r = east.patch(f"/v1/campaigns/{draft}", json={"audience": {"home_stores": ["S01", "S02"]}})
    assert (r.status_code, r.json()["audience"]["home_stores"]) == (200, ["S01", "S02"])
    for move, status in (("schedule", "scheduled"), ("cancel", "cancelled")):
        r = east.post(f"/v1/campaigns/{draft}/{move}")
        assert (r.status_code, r.json().get("status")) == (200, status), r.text

    # A company-wide operator may widen a region's campaign; from then on the region no longer sees it.
    r = flow.campaigns.post("/v1/campaigns", json=campaign("Draft 2", home_stores=["S01"]))
    widened = r.json()["campaign_id"]
    assert east.get(f"/v1/campaigns/{widened}").status_code == 200
    r = flow.campaigns.patch(f"/v1/campaigns/{widened}", json={"audience": {"home_stores": ["S01", "S03"]}})
    assert r.status_code == 200, r.text
    r = east.get(f"/v1/campaigns/{widened}")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "campaign_not_found")


def test_a_store_key_still_may_not_define_launch_or_preview_even_its_own_stores_campaign(flow: Flow):
    store = flow.platform["campaigns"].api(S01_KEY)
    r = store.post("/v1/campaigns", json=campaign("S01 only", home_stores=["S01"]))
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden_scope")
    r = flow.campaigns.post("/v1/campaigns", json=campaign("S01 only", home_stores=["S01"]))
    cid = r.json()["campaign_id"]
    for method, path in (("POST", "/launch"), ("GET", "/preview"), ("POST", "/cancel")):
        r = store.request(method, f"/v1/campaigns/{cid}{path}")
        assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden_scope"), path
    # Results are figures over customers: it reads them over its own store's members once the campaign launched
    # (tests/integration/flows/test_scope_gaps.py); before, the answer anyone gets.
    r = store.get(f"/v1/campaigns/{cid}/results")
    assert (r.status_code, r.json()["error"]["code"]) == (409, "not_launched")
    # It still reads definitions, and the list is as before.
    assert store.get(f"/v1/campaigns/{cid}").status_code == 200
    assert store.get("/v1/campaigns").json()["total"] == 1
