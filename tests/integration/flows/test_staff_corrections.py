"""Issue 14, identity's staff corrections as every service sees them, the four services in this process on a
real broker: a staff merge reaches loyalty (and the view's loyalty part) as any merge does and the unmerge
route gives each side back its own; a store transfer moves who may see the customer in loyalty too; after a
phone change, the old number's new owner earns points of their own."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from shared.settings import Settings
from tests.integration.flows.support import ADMIN, OPERATOR, READER, Flow, at, new_phone, purchase, running_flow

pytestmark = pytest.mark.broker

S02_READER = "corrections-s02-reader"


@pytest.fixture
def flow(broker, tmp_path) -> Iterator[Flow]:
    """The four services, with a reader key scoped to store S02 besides the company-wide keys."""
    settings = Settings(_env_file=None, kafka_bootstrap=broker, data_dir=str(tmp_path),
                        api_keys=f"{ADMIN}:admin,{OPERATOR}:operator,{READER}:reader,{S02_READER}:reader@store=S02",
                        pseudonym_secret="corrections-test-secret-0123456789")
    with running_flow(settings) as flow:
        yield flow


def _points(flow: Flow, customer_id: str) -> tuple[str, int]:
    account = flow.account(customer_id)
    return account["customer_id"], account["points_balance"]


def test_a_staff_merge_reaches_loyalty_and_the_view_and_the_unmerge_gives_each_side_its_own(flow: Flow):
    flow.set_clocks(at("2026-11-20T12:00"))
    li, wang = new_phone(), new_phone()
    flow.ingest(purchase({"phone": li}, at("2026-11-02T10:00"), "100.00", store="S01"),
                purchase({"phone": wang}, at("2026-11-03T10:00"), "40.00", store="S01"))
    a, b = flow.customer_id(phone=li), flow.customer_id(phone=wang)
    assert (_points(flow, a), _points(flow, b)) == ((a, 100), (b, 40))

    r = flow.identity.post(f"/v1/customers/{a}/merge", json={"customer_id": b, "reason": "one person, ID checked"})
    assert r.status_code == 200, r.text
    merge_id = r.json()["merge_id"]
    flow.platform.settle()
    assert flow.customer_id(phone=wang) == a
    assert _points(flow, b) == (a, 140)  # loyalty followed the survivor
    assert flow.view(a)["loyalty"]["points_balance"] == 140
    assert flow.view(a)["merged_from"] == [b]

    r = flow.identity.post(f"/v1/customers/{a}/unmerge", json={"merge_id": merge_id})
    assert r.status_code == 200, r.text
    flow.platform.settle()
    assert (_points(flow, a), _points(flow, b)) == ((a, 100), (b, 40))
    assert (flow.view(a)["loyalty"]["points_balance"], flow.view(b)["loyalty"]["points_balance"]) == (100, 40)
    audit = flow.platform["identity"].api(ADMIN).get("/v1/audit", params={"customer_id": a}).json()["items"]
    assert [(e["action"], e["target"]) for e in audit] == [("identity.unmerge", merge_id), ("identity.merge", merge_id)]
    flow.assert_replays_change_nothing([a, b])


def test_a_store_transfer_changes_who_sees_the_customer_in_loyalty_too(flow: Flow):
    flow.set_clocks(at("2026-11-20T12:00"))
    phone = new_phone()
    flow.ingest(purchase({"phone": phone}, at("2026-11-02T10:00"), "100.00", store="S01"))
    c = flow.customer_id(phone=phone)
    s02_loyalty = flow.platform["loyalty"].api(S02_READER)
    assert s02_loyalty.get(f"/v1/loyalty/accounts/{c}").status_code == 404

    r = flow.identity.put(f"/v1/customers/{c}/owner", json={"store_id": "S02", "reason": "moved to S02's counter"})
    assert r.status_code == 200, r.text
    flow.platform.settle()
    r = s02_loyalty.get(f"/v1/loyalty/accounts/{c}")
    assert (r.status_code, r.json()["points_balance"]) == (200, 100)
    assert flow.platform["identity"].api(S02_READER).get(f"/v1/customers/{c}").status_code == 200

    r = flow.identity.put(f"/v1/customers/{c}/owner", json={"store_id": None, "reason": "back to S01"})
    assert r.status_code == 200, r.text
    flow.platform.settle()
    assert s02_loyalty.get(f"/v1/loyalty/accounts/{c}").status_code == 404


def test_after_a_phone_change_the_old_numbers_new_owner_earns_points_of_their_own(flow: Flow):
    # Identity dates the change by its own clock, set here too: at the real time the first purchase's points
    # would have expired by the time the test ran a year on, and the balances below would read 5 and 30.
    flow.set_clocks(at("2026-11-20T12:00"))
    flow.platform.set_clocks(at("2026-11-20T12:00"), "identity")
    old, new = new_phone(), new_phone()
    flow.ingest(purchase({"phone": old}, at("2026-11-02T10:00"), "100.00", store="S01"))
    c = flow.customer_id(phone=old)
    r = flow.identity.put(f"/v1/customers/{c}/phone", json={"phone": new, "reason": "customer's new number"})
    assert r.status_code == 200, r.text

    # Both purchases happen after the change (a purchase from before it is the old holder's: a till's late upload).
    after = at("2026-11-20T12:10")
    flow.set_clocks(after + timedelta(hours=1))
    flow.ingest(purchase({"phone": old}, after, "30.00", store="S01"),
                purchase({"phone": new}, after + timedelta(minutes=5), "5.00", store="S01"))
    someone_else = flow.customer_id(phone=old)
    assert someone_else != c and flow.customer_id(phone=new) == c
    assert (_points(flow, c), _points(flow, someone_else)) == ((c, 105), (someone_else, 30))
    assert flow.view(c)["stats"]["total_spend"] == "105.00"
    flow.assert_replays_change_nothing([c, someone_else])
