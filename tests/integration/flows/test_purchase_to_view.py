"""Flow 1: a purchase posted to identity earns the points loyalty's rules say, identity's single customer
view shows them, a refund takes back what the refund formula says, and a redemption spends them."""

from __future__ import annotations

from tests.integration.flows.support import Flow, at, event, new_phone, purchase


def test_a_purchase_earns_points_the_view_shows_and_a_refund_takes_back_its_share(flow: Flow):
    flow.set_clocks(at("2026-11-20T12:00"))
    phone = new_phone()
    bought = purchase({"phone": phone}, at("2026-11-20T10:15"), "268.50", store="SH-001")
    flow.ingest(bought)
    customer = flow.customer_id(phone=phone)

    # 1 point per 1.00 CNY, rounded down once: floor(268.50) = 268.
    view = flow.view(customer)
    assert view["loyalty"]["points_balance"] == 268
    assert view["loyalty"]["tier"] is None
    assert view["stats"]["total_spend"] == "268.50"
    assert flow.account(customer)["points_balance"] == 268

    # A refund of 100.00 of the 268.50 order leaves floor(268 x 168.50 / 268.50) = floor(168.19...) = 168.
    flow.ingest(event("crm.refund", at("2026-11-20T11:00"), {"phone": phone}, source="pos/SH-001",
                      order_id=bought["data"]["order_id"], amount="100.00"))
    view = flow.view(customer)
    assert view["loyalty"]["points_balance"] == 168
    assert view["stats"]["refund_total"] == "100.00"
    assert flow.account(customer)["points_balance"] == 168

    # Spending points through loyalty's API shows in the view too (and a retried request spends once).
    reward = flow.loyalty.post("/v1/loyalty/rewards", json={"name": "Sample kit", "points_cost": 100, "stock": 3})
    assert reward.status_code == 201, reward.text
    for _ in range(2):
        r = flow.loyalty.post(f"/v1/loyalty/accounts/{customer}/redemptions",
                              json={"reward_id": reward.json()["reward_id"]}, headers={"Idempotency-Key": "kit-1"})
        assert (r.status_code, r.json()["points_balance"]) == (201, 68), r.text
    flow.platform.settle()
    assert flow.view(customer)["loyalty"]["points_balance"] == 68

    flow.assert_replays_change_nothing([customer])


def test_a_refund_that_arrives_before_its_purchase_ends_with_the_same_points(flow: Flow):
    flow.set_clocks(at("2026-11-20T12:00"))
    phone = new_phone()
    bought = purchase({"phone": phone}, at("2026-11-20T10:15"), "268.50", store="SH-001")
    # The till that sold it was offline: the refund from another till reaches the platform first.
    flow.ingest(event("crm.refund", at("2026-11-20T11:00"), {"phone": phone}, source="pos/SH-002",
                      order_id=bought["data"]["order_id"], amount="100.00"))
    customer = flow.customer_id(phone=phone)
    assert flow.view(customer)["loyalty"]["points_balance"] == 0
    flow.ingest(bought)
    view = flow.view(customer)
    assert (view["loyalty"]["points_balance"], view["stats"]["total_spend"], view["stats"]["refund_total"]) == (
        168, "268.50", "100.00")

    flow.assert_replays_change_nothing([customer])
