"""Edge cases of identity's staff corrections (issue 14: conflicts, audit text, odd attributes) through the
HTTP API, on each store."""

from __future__ import annotations

from tests.integration.identity.test_corrections_api import ADMIN, LI, NEW, OPERATOR, WANG, Platform
from tests.unit.identity.support import customer_of_phone, event, purchase

ZHAO = "+8613600136000"


def _conflicts(platform: Platform, status: str = "open") -> list[dict]:
    return platform.call("GET", "/v1/identity/conflicts", ADMIN, params={"status": status}).json()["items"]


def test_a_merge_citing_a_conflict_about_other_customers_is_refused_and_closes_nothing(store):
    platform = Platform(store)
    platform.ingest(*(purchase(f"p{i}", {"phone": p}, "10.00") for i, p in enumerate((LI, WANG, NEW, ZHAO))))
    li, wang, new, zhao = (customer_of_phone(p) for p in (LI, WANG, NEW, ZHAO))
    platform.ingest(event("w1", {"phone": NEW, "wechat_openid": "oX-8"}, source="wechat/oa", kind="crm.follow"),
                    event("w2", {"phone": ZHAO, "wechat_openid": "oX-8"}, source="wechat/oa", kind="crm.follow"))
    [other] = _conflicts(platform)
    assert sorted(other["customer_ids"]) == sorted([new, zhao])
    r = platform.call("POST", f"/v1/customers/{li}/merge", OPERATOR,
                      json={"customer_id": wang, "conflict_id": other["conflict_id"], "reason": "same person"})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "conflict_not_about_these"), r.text
    assert [c["conflict_id"] for c in _conflicts(platform)] == [other["conflict_id"]]
    assert (platform.lookup(LI), platform.lookup(WANG)) == (li, wang)


def test_a_custom_attribute_name_is_no_place_for_personal_data_in_the_audit_log(store):
    platform = Platform(store)
    platform.ingest(purchase("p1", {"phone": LI}, "10.00"))
    li = customer_of_phone(LI)
    r = platform.call("PATCH", f"/v1/customers/{li}/profile", OPERATOR,
                      json={"attributes": {"contact 13900139000": "wife"}, "reason": "asked at the counter"})
    assert r.status_code == 200, r.text
    [entry] = platform.audit("identity.profile.correct")
    assert entry["target"].startswith("attributes.contact ") and "13900139000" not in entry["target"], entry


def test_a_reason_naming_a_phone_is_scrubbed_in_the_audit_entry(store):
    platform = Platform(store)
    platform.ingest(purchase("p1", {"phone": LI}, "10.00"))
    li = customer_of_phone(LI)
    r = platform.call("PUT", f"/v1/customers/{li}/phone", OPERATOR,
                      json={"phone": NEW, "reason": "old number 13800138000 lost, new one 13700137000"})
    assert r.status_code == 200, r.text
    [entry] = platform.audit("identity.phone.change")
    assert "13800138000" not in entry["reason"] and "13700137000" not in entry["reason"], entry


def test_huge_or_odd_attribute_names_answer_422_not_500(store):
    platform = Platform(store)
    platform.ingest(purchase("p1", {"phone": LI}, "10.00"))
    li = customer_of_phone(LI)
    for name in ("x" * 5000, "", "a.b", "$set"):
        r = platform.call("PATCH", f"/v1/customers/{li}/profile", OPERATOR,
                          json={"attributes": {name: "v"}, "reason": "asked"})
        assert r.status_code in (200, 422), (name[:10], r.status_code, r.text[:300])


def test_a_phone_change_after_a_staff_merge_survives_the_unmerge(store):
    platform = Platform(store)
    platform.ingest(purchase("p1", {"phone": LI}, "100.00"), purchase("p2", {"phone": WANG}, "40.00"))
    li, wang = customer_of_phone(LI), customer_of_phone(WANG)
    done = platform.call("POST", f"/v1/customers/{li}/merge", OPERATOR,
                         json={"customer_id": wang, "reason": "same person"}).json()
    r = platform.call("PUT", f"/v1/customers/{li}/phone", OPERATOR, json={"phone": NEW, "reason": "new SIM"})
    assert r.status_code == 200, r.text
    assert (platform.lookup(LI), platform.lookup(NEW), platform.lookup(WANG)) == (404, li, li)
    r = platform.call("POST", f"/v1/customers/{li}/unmerge", OPERATOR, json={"merge_id": done["merge_id"]})
    assert r.status_code == 200, r.text
    assert (platform.lookup(LI), platform.lookup(NEW), platform.lookup(WANG)) == (404, li, wang)
    assert platform.view(li)["phone"] == NEW and platform.view(wang)["phone"] == WANG
    same = platform.call("PUT", f"/v1/customers/{li}/phone", OPERATOR,
                         json={"phone": "137 0013 7000", "reason": "again"})
    assert (same.status_code, same.json()["error"]["code"]) == (409, "phone_unchanged")


def test_a_huge_number_in_a_custom_attribute_answers_422_not_500(store):
    platform = Platform(store)
    platform.ingest(purchase("p1", {"phone": LI}, "10.00"))
    li = customer_of_phone(LI)
    r = platform.call("PATCH", f"/v1/customers/{li}/profile", OPERATOR,
                      json={"attributes": {"visits": 10**30}, "reason": "asked"})
    assert r.status_code in (200, 422), r.text[:300]
    if r.status_code == 200:
        assert platform.view(li)["attributes"]["custom"]["visits"] == 10**30
