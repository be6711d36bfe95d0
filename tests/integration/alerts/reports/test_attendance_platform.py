"""The attendance sheet end to end (issue 15): purchases with covers posted to identity's ``POST /v1/events``,
resolved and handed on through the broker, kept by alerts; a merge through identity joins the two records'
October visits and an unmerge through its API splits them again."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from shared.settings import Settings
from tests.integration.flows.support import ADMIN, OPERATOR, READER, Flow, at, event, new_id, new_phone, running_flow

pytestmark = pytest.mark.broker

STORES = [{"store_id": "BJ-01", "name": "Beijing 1", "region": "north", "timezone": "Asia/Shanghai",
           "meal_periods": "lunch=10:30-15:00;dinner=16:30-22:30"}]


@pytest.fixture
def flow(broker, tmp_path) -> Iterator[Flow]:
    stores = tmp_path / "stores.json"
    stores.write_text(json.dumps(STORES))
    settings = Settings(_env_file=None, kafka_bootstrap=broker, data_dir=str(tmp_path), stores_file=str(stores),
                        api_keys=f"{ADMIN}:admin,{OPERATOR}:operator,{READER}:reader",
                        pseudonym_secret="flows-test-secret-0123456789")
    with running_flow(settings) as flow:
        yield flow


def bought(identity: dict, when: str, amount: str, covers: int | None) -> dict:
    order = new_id("T")
    data = {"order_id": order, "amount": amount, "currency": "CNY", "store_id": "BJ-01"}
    if covers is not None:
        data["covers"] = covers
    return event("crm.purchase", at(when), identity, source="pos/BJ-01", eid=order, **data)


def sheet(flow: Flow, month: str) -> dict[str, tuple]:
    r = flow.alerts_api.get("/v1/reports/attendance", params={"store_id": "BJ-01", "month": month})
    assert r.status_code == 200, r.text
    return {x["customer_id"]: (x["visits"], x["orders"], x["spend"], x["covers"], x["spend_per_head"])
            for x in r.json()["items"]}


def test_covers_posted_to_identity_reach_the_sheet_and_a_merge_and_unmerge_change_october(flow: Flow):
    flow.set_clocks(at("2026-11-20T12:00"))
    phone, member = new_phone(), new_id("M")
    flow.ingest(bought({"phone": phone}, "2026-10-05T12:00", "300.00", 3),
                bought({"member_id": member}, "2026-10-05T13:10", "200.00", 4),  # the same lunch, another record
                bought({"member_id": member}, "2026-10-05T19:00", "150.00", None),  # that day's dinner
                bought({"phone": phone}, "2026-11-02T12:00", "482.00", 6))
    p, m = flow.customer_id(phone=phone), flow.customer_id(member_id=member)
    assert p != m
    assert sheet(flow, "2026-10") == {p: (1, 1, "300.00", 3, "100.00"), m: (2, 2, "350.00", 4, "50.00")}
    assert sheet(flow, "2026-11") == {p: (1, 1, "482.00", 6, "80.33")}  # 80.333...

    # The member gives the phone number at the till: one person, whose shared lunch is one visit of 4.
    flow.ingest(event("crm.profile", at("2026-11-20T11:50"), {"phone": phone, "member_id": member},
                      source="pos/BJ-01", city="Beijing"))
    survivor = flow.customer_id(phone=phone)
    assert flow.customer_id(member_id=member) == survivor
    assert sheet(flow, "2026-10") == {survivor: (2, 3, "650.00", 4, "125.00")}

    merges = flow.identity.get(f"/v1/customers/{survivor}/merges").json()["items"]
    r = flow.identity.post(f"/v1/customers/{survivor}/unmerge", json={"merge_id": merges[0]["merge_id"]})
    assert r.status_code == 200, r.text
    flow.platform.settle()
    assert sheet(flow, "2026-10") == {p: (1, 1, "300.00", 3, "100.00"), m: (2, 2, "350.00", 4, "50.00")}
