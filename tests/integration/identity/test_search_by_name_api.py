"""Issue 16, ``GET /v1/customers/search?name=``: staff find a customer by name, only within their scope,
several customers of one name paged by id, masked like every view; a rename and an erasure move the index with
the name; the name is never in an error; a miss counts against the lookup miss budget like a lookup."""

from __future__ import annotations

import pytest

from shared.http.ratelimit import RateLimits
from tests.integration.identity.test_corrections_api import ADMIN, OPERATOR, READER, S2_READER, Platform
from tests.unit.identity.support import customer_of_phone, event, purchase

LI_1, LI_2, WANG = "+8613800138001", "+8613800138002", "+8613900139000"


@pytest.fixture
def platform(store) -> Platform:
    p = Platform(store)
    # Two customers called Li Lei, one of store SH-001 and one of SH-002, and Wang Fang of SH-002.
    p.ingest(purchase("p1", {"phone": LI_1}, "10.00", store_id="SH-001"),
             purchase("p2", {"phone": LI_2}, "20.00", store_id="SH-002"),
             purchase("p3", {"phone": WANG}, "30.00", store_id="SH-002"),
             event("n1", {"phone": LI_1}, kind="crm.profile", source="web/shop", name="Li Lei"),
             event("n2", {"phone": LI_2}, kind="crm.profile", source="web/shop", name="ＬＩ ＬＥＩ"),
             event("n3", {"phone": WANG}, kind="crm.profile", source="web/shop", name="王 芳"))
    return p


def _search(platform: Platform, name: str, key: str = READER, **params):
    return platform.call("GET", "/v1/customers/search", key, params={"name": name, **params})


def _ids(r) -> list[str]:
    assert r.status_code == 200, r.text
    return [c["customer_id"] for c in r.json()["items"]]


def test_a_name_finds_every_customer_with_it_masked_and_paged_by_id(platform):
    both = sorted([customer_of_phone(LI_1), customer_of_phone(LI_2)])
    r = _search(platform, "li lei")
    assert _ids(r) == both
    first = r.json()["items"][0]
    assert (first["attributes"]["name"][0], first["phone"][3:7]) == ("L", "****")  # masked as every view
    assert "Li Lei" not in r.text and "ＬＩ ＬＥＩ" not in r.text
    assert _ids(_search(platform, "LiLei", limit=1)) == both[:1]
    paged = _search(platform, "Li Lei", limit=1, offset=1)
    assert (_ids(paged), paged.json()["offset"], paged.json()["limit"]) == (both[1:], 1, 1)
    assert _ids(_search(platform, "Li Lei", offset=2)) == []  # past the end: an empty page, not a 404
    assert _ids(_search(platform, "王芳")) == [customer_of_phone(WANG)]


def test_store_staff_find_only_their_stores_customers(platform):
    assert _ids(_search(platform, "Li Lei", S2_READER)) == [customer_of_phone(LI_2)]
    assert _ids(_search(platform, "王芳", S2_READER)) == [customer_of_phone(WANG)]
    platform.ingest(event("n4", {"phone": LI_1}, kind="crm.profile", source="web/shop", name="Zhou Xun",
                          time="2026-05-02T10:00:00+08:00"))
    r = _search(platform, "Zhou Xun", S2_READER)  # only SH-001's customer has it: as if nobody had
    assert (r.status_code, r.json()["error"]) == (
        404, {"code": "customer_not_found", "message": "no customer you may see has that name"})
    assert _ids(_search(platform, "Zhou Xun", ADMIN)) == [customer_of_phone(LI_1)]


def test_a_rename_moves_the_customer_to_the_new_name_and_an_erasure_removes_it(platform):
    li = customer_of_phone(LI_1)
    r = platform.call("PATCH", f"/v1/customers/{li}/profile", OPERATOR,
                      json={"name": "Li Leilei", "reason": "the customer showed an ID card"})
    assert r.status_code == 200, r.text
    assert _ids(_search(platform, "li leilei")) == [li]
    assert _ids(_search(platform, "Li Lei")) == [customer_of_phone(LI_2)]
    r = platform.call("POST", f"/v1/customers/{li}/erasure", ADMIN, json={"reason": "the customer asked"})
    assert r.status_code == 202, r.text
    assert _search(platform, "Li Leilei").status_code == 404


def test_a_bad_name_is_refused_without_echoing_it(platform):
    r = _search(platform, "Li Lei " * 40)
    assert r.status_code == 422 and "Li Lei" not in r.text
    assert platform.call("GET", "/v1/customers/search", READER).status_code == 422


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def test_names_that_find_nobody_spend_the_lookup_miss_budget(platform):
    api = platform.service.api
    api.state.rate_limits = RateLimits(platform.service.settings, clock=Clock())
    statuses = [_search(platform, f"Nobody {n}").status_code for n in range(22)]
    assert statuses == [404] * 20 + [429] * 2
    assert platform.call("GET", "/v1/customers/lookup", READER, params={"phone": LI_1}).status_code == 429
    assert _search(platform, "Li Lei", ADMIN).status_code == 200  # admins are not budgeted (they see all)


def test_names_kept_before_the_index_or_under_another_key_are_found_once_identity_starts(store):
    from tests.integration.identity.test_names_store_contract import OTHER_KEY, _named, _reopened

    _named(store, "c_old", "Guo Jing")  # indexed under the development key only
    restarted = Platform(_reopened(store, OTHER_KEY))  # the service starts with a new key: the index is rebuilt
    assert _ids(_search(restarted, "guo jing")) == ["c_old"]
