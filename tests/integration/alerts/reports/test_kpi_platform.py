"""Issue 15, through the platform (identity resolves, every service consumes, against a real broker): a
non-member's sale counts in its store's totals only, never as a customer, in loyalty or in campaigns."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.settings import Settings
from tests.integration.flows.support import (
    ADMIN,
    OPERATOR,
    READER,
    Flow,
    at,
    event,
    new_id,
    new_phone,
    purchase,
    running_flow,
)

pytestmark = pytest.mark.broker


@pytest.fixture
def flow(broker, tmp_path) -> Iterator[Flow]:
    settings = Settings(_env_file=None, kafka_bootstrap=broker, data_dir=str(tmp_path),
                        api_keys=f"{ADMIN}:admin,{OPERATOR}:operator,{READER}:reader",
                        pseudonym_secret="kpi-test-secret-0123456789")
    with running_flow(settings) as flow:
        yield flow


def test_a_non_members_sale_counts_in_store_totals_only(flow: Flow):
    phone = new_phone()
    flow.set_clocks(at("2026-11-30T12:00"))
    member = purchase({"phone": phone}, at("2026-11-02T12:00"), "300.00", order_id="T-m1")
    walk_in = purchase({}, at("2026-11-03T12:00"), "100.00", order_id="T-n1")
    flow.ingest(member, walk_in, event("crm.refund", at("2026-11-03T13:00"), {}, order_id="T-n1", amount="25.00"))
    customer = flow.customer_id(phone=phone)
    assert flow.account(customer)["points_balance"] == 300  # the member's purchase alone earned points
    r = flow.alerts_api.get("/v1/reports/stores/SH-001", params={"month": "2026-11"})
    assert r.status_code == 200, r.text
    got = r.json()
    # 300 + 100 - 25 = 375 over 2 orders; members 300 of it; one customer.
    assert (got["sales"], got["orders"], got["member_sales"], got["non_member_sales"], got["customers"],
            got["average_ticket"], got["member_capture_rate"]) == ("375.00", 2, "300.00", "75.00", 1, "187.50", 0.8)
    counts = flow.platform["identity"].deps.store.customer_count()
    assert counts == 1  # no customer was made for the walk-in


def test_a_merge_by_identity_joins_a_past_month_and_its_unmerge_splits_it(flow: Flow):
    flow.set_clocks(at("2026-11-20T12:00"))
    store = new_id("SH")
    openid, phone = new_id("oX"), new_phone()
    wechat = {"wechat_openid": openid}
    # October: the same person buys once as a WeChat follower and once by phone: two customers, one day each.
    flow.ingest(purchase(wechat, at("2026-10-02T20:00"), "200.00", store=store, source="wechat/mini"),
                purchase({"phone": phone}, at("2026-10-05T12:00"), "400.00", store=store))

    def october() -> tuple:
        r = flow.alerts_api.get(f"/v1/reports/stores/{store}", params={"month": "2026-10"})
        assert r.status_code == 200, r.text
        got = r.json()
        return got["customers"], got["repeat_purchase_rate"], got["purchase_frequency"], got["sales"]

    assert october() == (2, 0.0, 1.0, "600.00")
    # In November the follower gives the phone number: one customer, who bought on two October days.
    flow.ingest(event("crm.profile", at("2026-11-20T11:50"), {"phone": phone, **wechat}, source="wechat/mini",
                      city="Shanghai"))
    p = flow.customer_id(phone=phone)
    assert october() == (1, 1.0, 2.0, "600.00")
    merges = flow.identity.get(f"/v1/customers/{p}/merges").json()["items"]
    r = flow.identity.post(f"/v1/customers/{p}/unmerge", json={"merge_id": merges[0]["merge_id"]})
    assert r.status_code == 200, r.text
    flow.platform.settle()
    assert october() == (2, 0.0, 1.0, "600.00")
