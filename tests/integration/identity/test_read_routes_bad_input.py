"""Identity's read routes against forged cursors and offsets (issue 10, finding 4): 422, never 500."""

from __future__ import annotations

import base64
import json

import pytest

from tests.integration.identity.test_api_on_every_store import ADMIN, LI, OPERATOR, READER, Platform
from tests.unit.identity.support import customer_of_phone, purchase


@pytest.fixture
def platform(store) -> Platform:
    p = Platform(store)
    r = p.call("POST", "/v1/events", OPERATOR, json=[
        purchase(f"p{i}", {"phone": LI}, "10.00", time=f"2026-05-0{i}T10:00:00+08:00") for i in range(1, 4)])
    assert r.status_code == 202
    p.consume()
    return p


def _b64(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


def test_a_forged_or_garbage_timeline_cursor_is_invalid_cursor(platform):
    url = f"/v1/customers/{customer_of_phone(LI)}/timeline"
    first = platform.call("GET", url, READER, params={"limit": 1}).json()
    rest = platform.call("GET", url, READER, params={"cursor": first["next_cursor"]}).json()
    assert [e["id"] for e in first["items"] + rest["items"]] == ["p3", "p2", "p1"]
    for cursor in ("garbage", "é", _b64([2**70, "pos/SH-001", "p1"]), _b64([1e300, "pos/SH-001", "p1"]),
                   _b64([1, "\udfff", "p1"]), _b64(["1", "pos", "p1"]), _b64([1, "pos"]), _b64({"ms": 1})):
        r = platform.call("GET", url, READER, params={"cursor": cursor})
        assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_cursor"), cursor


def test_an_offset_beyond_a_64_bit_integer_is_422(platform):
    r = platform.call("GET", "/v1/identity/conflicts", ADMIN, params={"offset": 2**63})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["loc"] == "query.offset"
    assert platform.call("GET", "/v1/identity/conflicts", ADMIN, params={"offset": 10_000_000}).json()["items"] == []


def test_a_lookup_by_an_identifier_longer_than_any_event_may_carry_is_422(platform):
    for name, bound in (("phone", 40), ("email", 254), ("member_id", 128)):
        r = platform.call("GET", "/v1/customers/lookup", READER, params={name: "1" * (bound + 1)})
        assert r.status_code == 422 and r.json()["error"]["details"][0]["loc"] == f"query.{name}", name
    assert platform.call("GET", "/v1/customers/lookup", READER, params={"phone": LI}).status_code == 200
