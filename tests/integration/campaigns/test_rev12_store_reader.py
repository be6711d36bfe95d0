"""Review of issue 12, D9: a store-scoped reader of a campaign (one and the list) does not see the figures
of the whole campaign, its launch counts and touches and its costs (null, field names kept), as its
results leave out cost, ROI and touches; a company-wide reader sees them."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from services.campaigns.app import create_app
from services.campaigns.config import CampaignsSettings
from shared.settings import Settings
from tests.integration.campaigns.scenario import World
from tests.unit.campaigns import factory as f
from tests.unit.campaigns.factory import at

STORES = "store_id,name,region,timezone,parent\nSH-001,A,east,Asia/Shanghai,\nSH-002,B,east,Asia/Shanghai,\n"
BODY = {"name": "Spring", "objective": "promotion", "channel": "sms", "starts_at": at(0).isoformat(),
        "ends_at": at(20).isoformat(), "control_share": "0.2", "costs": {"fixed": "10.00", "per_touch": "0.10"}}


@pytest.fixture
def world(tmp_path) -> World:
    (tmp_path / "stores.csv").write_text(STORES)
    w = World.__new__(World)
    w.store, w.tmp, w.attribution, w.now, w.published, w.config, w.on_publish = (
        None, tmp_path, "last_touch", at(1), [], {}, None)
    settings = Settings(_env_file=None, data_dir=str(tmp_path), stores_file=str(tmp_path / "stores.csv"),
                        api_keys="op:operator,rd:reader,s1-reader:reader@store=SH-001")
    w.service = create_app(settings, publish=w._publish, clock=lambda: w.now,
                           config=CampaignsSettings(_env_file=None))
    w.http = TestClient(w.service.api, headers={"Authorization": "Bearer op"})
    msgs = []
    for i in range(10):
        cid = f"c_{i:03d}"
        msgs += [f.consent(cid, f"cons-{i}", at(0), "sms", True),
                 f.purchase(cid, f"pre-{i}", at(0), "100.00", store="SH-001" if i < 5 else "SH-002")]
    w.feed(msgs)
    return w


def test_a_store_scoped_reader_sees_no_launch_figures_and_no_costs(world):
    r = world.http.post("/v1/campaigns", json=BODY)
    assert r.status_code == 201, r.text
    campaign = r.json()["campaign_id"]
    launched = world.http.post(f"/v1/campaigns/{campaign}/launch")
    assert launched.status_code == 200 and launched.json()["launch"]["touches"] > 0, launched.text

    def read(key: str) -> tuple[dict, dict]:
        auth = {"Authorization": f"Bearer {key}"}
        one = world.http.get(f"/v1/campaigns/{campaign}", headers=auth)
        listed = world.http.get("/v1/campaigns", headers=auth)
        assert one.status_code == listed.status_code == 200, (one.text, listed.text)
        [item] = [c for c in listed.json()["items"] if c["campaign_id"] == campaign]
        return one.json(), item

    for seen in read("rd"):
        assert seen["launch"] == launched.json()["launch"]
        assert seen["costs"] == {"fixed": "10.00", "per_touch": "0.10"}
    for seen in read("s1-reader"):
        assert {"launch", "costs"} <= set(seen)  # the field names stay
        assert (seen["launch"], seen["costs"]) == (None, None)
        assert (seen["name"], seen["status"], seen["launched_at"]) == (
            "Spring", "running", launched.json()["launched_at"])
    # The results over its store's members leave the whole campaign's launch figures and costs out as well.
    mine = world.http.get(f"/v1/campaigns/{campaign}/results", headers={"Authorization": "Bearer s1-reader"})
    everyone = world.http.get(f"/v1/campaigns/{campaign}/results", headers={"Authorization": "Bearer rd"})
    assert mine.status_code == everyone.status_code == 200, (mine.text, everyone.text)
    assert (mine.json()["launch"], mine.json()["cost"]) == (None, {"fixed": None, "per_touch": None, "touches": None,
                                                                    "total": None})
    assert everyone.json()["launch"] == launched.json()["launch"]
    assert (everyone.json()["cost"]["fixed"], everyone.json()["cost"]["per_touch"]) == ("10.00", "0.10")
