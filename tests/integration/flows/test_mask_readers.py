"""What readers see of a customer in identity's and loyalty's routes (issue 12 review, D1, D2, D3, D5):
phones that cannot be recovered by lookups, free text without phones or dates in any notation, channel ids
without phones, and staff notes without the customer's name."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from shared.settings import Settings
from tests.integration.flows.support import identity_alone
from tests.unit.identity.support import event, purchase

ADMIN, READER, S01R, OPS = "k-admin-0001", "k-reader-0001", "k-s01-reader", "k-ops-0001"
STORES = "store_id,name,region,timezone,parent\nS01,A,east,Asia/Shanghai,\nS02,B,east,Asia/Shanghai,\n"


def _as(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def _settings(tmp_path) -> Settings:
    (tmp_path / "stores.csv").write_text(STORES)
    return Settings(_env_file=None, data_dir=str(tmp_path),
                    api_keys=f"{ADMIN}:admin,{READER}:reader,{S01R}:reader@store=S01,{OPS}:operator",
                    pseudonym_secret="mask-test-pseudonym-key-0123", token_secret="t" * 40,
                    stores_file=str(tmp_path / "stores.csv"), timezone="Asia/Shanghai")


@pytest.fixture
def identity(tmp_path):
    with identity_alone(_settings(tmp_path), ADMIN, accept=(202, 207)) as (_app, http, ingest):
        yield http, ingest, lambda phone: _customer(http, phone)


def _customer(http: TestClient, phone: str) -> str:
    r = http.get("/v1/customers/lookup", params={"phone": phone}, headers=_as(ADMIN))
    assert r.status_code == 200, r.text
    return r.json()["customer_id"]


def test_a_reader_cannot_recover_a_hong_kong_phone_from_its_mask_in_ten_lookups(identity):
    http, ingest, customer = identity
    ingest(purchase("p1", {"phone": "+85291234567"}, "88.00", store_id="S01"))
    view = http.get(f"/v1/customers/{customer('+85291234567')}", headers=_as(S01R)).json()
    assert view["phone"] == "****4567"
    assert [i["value"] for i in view["identifiers"] if i["type"] == "phone"] == ["****4567"]
    # Filling one hidden digit is no longer enough: every single-digit guess misses.
    for d in "0123456789":
        guess = "+852" + view["phone"].replace("*", d)
        assert http.get("/v1/customers/lookup", params={"phone": guess}, headers=_as(S01R)).status_code != 200


def test_free_text_shows_no_phone_or_written_out_birthday_in_any_notation(identity):
    http, ingest, customer = identity
    ingest(event("t1", {"phone": "+8613512340001"}, kind="crm.profile", source="web/shop", name="Wang Fang",
                 birthday="1985-03-12", attributes={"remark": "husband Li Lei 9123_4567, wed June 3rd, 2010"}),
           event("t3", {"phone": "+8613512340001", "member_id": "+852 9123 4567"}, kind="crm.complaint",
                 source="wechat/oa", text="WANG FANG: call me on 135_1234_0001 or 135*1234*0002",
                 more="or 135,1234,0003 or 一三五一二三四零零零四", born="March 12, 1985 or 12 Mar 1985",
                 again="85-03-12, 一九八五年三月十二日", store_id="S01", severity="high"))
    cid = customer("+8613512340001")
    timeline = http.get(f"/v1/customers/{cid}/timeline", headers=_as(S01R)).json()
    complaint = next(i for i in timeline["items"] if i["type"] == "crm.complaint")["data"]
    assert (complaint["text"], complaint["more"], complaint["born"], complaint["again"]) == (
        "W********: call me on *******0001 or *******0002", "or *******0003 or *******零零零四",
        "****-**-** or ****-**-**", "****-**-**, ****-**-**")
    assert complaint["identity"]["member_id"] == "*******4567"
    view = http.get(f"/v1/customers/{cid}", headers=_as(S01R)).json()
    assert view["attributes"]["custom"]["remark"] == "husband Li Lei ****4567, wed ****-**-**"
    shown = json.dumps([timeline, view], ensure_ascii=False)
    for secret in ("1234_0001", "1234*0002", "1234,0003", "一二三四", "March 12", "12 Mar", "85-03-12", "一九八五",
                   "9123 4567", "9123_", "June 3rd"):
        assert secret not in shown, secret


def test_channel_ids_built_from_a_phone_are_masked_for_readers_and_whole_on_reveal(identity):
    http, ingest, customer = identity
    ingest(purchase("wx-13512340001-0001", {"phone": "+8613512340001"}, "10.00", store_id="S01",
                    source="wechat/mp/13512340001"),
           event("wx-13512340001-0002", {"phone": "+8613512340001"}, kind="crm.profile",
                 source="wechat/mp/13512340001", gender="F"))
    cid = customer("+8613512340001")
    view = http.get(f"/v1/customers/{cid}", headers=_as(S01R)).json()
    timeline = http.get(f"/v1/customers/{cid}/timeline", headers=_as(S01R)).json()
    assert {(i["event_id"], i["source"]) for i in view["identifiers"]} == {
        ("wx-*******0001-0001", "wechat/mp/*******0001")}
    assert (view["attribute_sources"]["gender"]["event_id"], view["attribute_sources"]["gender"]["source"]) == (
        "wx-*******0001-0002", "wechat/mp/*******0001")
    assert {(i["id"], i["source"]) for i in timeline["items"]} == {
        ("wx-*******0001-0001", "wechat/mp/*******0001"), ("wx-*******0001-0002", "wechat/mp/*******0001")}
    assert "13512340001" not in json.dumps([view, timeline])
    revealed = http.get(f"/v1/customers/{cid}/timeline", params={"reveal": "true"}, headers=_as(ADMIN)).json()
    assert {i["id"] for i in revealed["items"]} == {"wx-13512340001-0001", "wx-13512340001-0002"}


def test_a_merge_cause_and_a_conflict_show_no_phone_in_their_ids_and_no_name_in_the_note(identity):
    http, ingest, customer = identity
    ingest(purchase("p1", {"phone": "+8613512340001"}, "10.00", store_id="S01"),
           event("p0", {"phone": "+8613512340001"}, kind="crm.profile", source="web/shop", name="Wang Fang"),
           purchase("p2", {"phone": "+8613512340002"}, "10.00", store_id="S01"),
           event("wx-13512340001-9", {"wechat_openid": "oX1", "phone": "+8613512340001"}, kind="crm.follow",
                 source="wechat/oa/13512340001"))
    ingest(event("wx-13512340002-9", {"wechat_openid": "oX1", "phone": "+8613512340002"}, kind="crm.follow",
                 source="wechat/oa/13512340002"))
    conflicts = http.get("/v1/identity/conflicts", headers=_as(READER)).json()["items"]
    assert conflicts, "two phones on one openid make a conflict"
    one = conflicts[0]
    assert "1351234000" not in one["event_id"] + one["source"]
    done = http.post(f"/v1/identity/conflicts/{one['conflict_id']}", headers=_as(OPS),
                     json={"status": "dismissed", "note": "Wang Fang says 135_1234_0002 is her husband's"})
    assert done.status_code == 204, done.text
    after = http.get("/v1/identity/conflicts", params={"status": "dismissed"}, headers=_as(READER))
    note = next(c for c in after.json()["items"]
                if c["conflict_id"] == one["conflict_id"])["note"]
    assert note == "W******** says *******0002 is her husband's"
    cid = customer("+8613512340001")
    for m in http.get(f"/v1/customers/{cid}/merges", headers=_as(READER)).json()["items"]:
        assert "1351234000" not in json.dumps(m["cause"])
