"""Issue 12, scoped access on the running platform: identity and loyalty started as a user starts them,
events in over HTTP, the owning store carried through the broker; a key scoped to S01 gets the unknown
id's 404 for S02's customer in both services while a company-wide key sees both."""

from __future__ import annotations

import httpx
import pytest

from crm.broker import free_port
from tests.conftest import wait_for
from tests.integration.flows.support import at, new_phone, purchase

pytestmark = [pytest.mark.broker, pytest.mark.slow]

UNKNOWN = "c_" + "0" * 20


def _client(port: int, key: str) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_a_store_scoped_key_sees_its_stores_customer_and_not_another_stores_on_the_running_platform(stack):
    stack.env["CRM_API_KEYS"] += ",s01-reader:reader@store=S01,s02-reader:reader@store=S02"
    identity_port, loyalty_port = free_port(), free_port()
    stack.start_service("identity", api_port=identity_port)
    stack.start_service("loyalty", api_port=loyalty_port)
    phones = {"S01": new_phone(), "S02": new_phone()}
    with _client(identity_port, "test-operator") as operator:
        r = operator.post("/v1/events", json=[purchase({"phone": p}, at("2026-11-02T10:00"), "88.00", store=s)
                                              for s, p in phones.items()])
        assert r.status_code == 202, r.text
    with _client(identity_port, "test-reader") as company:
        ids = {s: wait_for(lambda p=p: company.get("/v1/customers/lookup", params={"phone": p}).json()
                           .get("customer_id"), what="the customer resolved") for s, p in phones.items()}
    routes = {identity_port: "/v1/customers/{}", loyalty_port: "/v1/loyalty/accounts/{}"}
    for store in ("S01", "S02"):
        with _client(loyalty_port, f"{store.lower()}-reader") as scoped:
            # The owning store travels identity -> broker -> loyalty: the store's own customer shows up.
            wait_for(lambda c=scoped, s=store: c.get(f"/v1/loyalty/accounts/{ids[s]}").status_code == 200,
                     what=f"loyalty knowing {store}'s customer is {store}'s")
    for port, route in routes.items():
        with _client(port, "s01-reader") as s01, _client(port, "test-reader") as company:
            unknown = s01.get(route.format(UNKNOWN))
            other = s01.get(route.format(ids["S02"]))
            assert unknown.status_code == 404 and (other.status_code, other.json()) == (404, unknown.json()), route
            assert s01.get(route.format(ids["S01"])).status_code == 200, route
            assert [company.get(route.format(ids[s])).status_code for s in ("S01", "S02")] == [200, 200], route
