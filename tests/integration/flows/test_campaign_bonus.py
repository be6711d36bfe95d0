"""Flow 4: a campaign with a bonus multiplier, launched over HTTP, makes loyalty multiply a treatment
member's points on purchases inside the campaign's window (also when the purchase reaches loyalty before
the grant does), and not a control member's, nor outside the window; the view says group and conversion."""

from __future__ import annotations

from typing import Any

from shared.contract import topics
from tests.integration.flows.support import Flow, at, event, new_id, new_phone, purchase

MEMBERS = 8


def launch_split_campaign(flow: Flow, definition: dict[str, Any], *, treatment: int, control: int) -> str:
    """Define drafts until one's split (a hash of campaign and customer) has enough members in each group,
    then launch it; returns its id."""
    for attempt in range(40):
        r = flow.campaigns.post("/v1/campaigns", json={**definition, "name": f"{definition['name']} #{attempt}"})
        assert r.status_code == 201, r.text
        cid = r.json()["campaign_id"]
        preview = flow.campaigns.get(f"/v1/campaigns/{cid}/preview").json()
        if preview["treatment"] >= treatment and preview["control"] >= control:
            r = flow.campaigns.post(f"/v1/campaigns/{cid}/launch")
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "running"
            return cid
        assert flow.campaigns.post(f"/v1/campaigns/{cid}/cancel").status_code == 200
    raise AssertionError("no split with enough members in each group")


def test_a_bonus_campaign_multiplies_treatment_points_inside_its_window_only(flow: Flow):
    flow.set_clocks(at("2026-11-10T09:00"))
    store = new_id("SH")  # the audience: customers whose home store is this one
    phones = [new_phone() for _ in range(MEMBERS)]
    flow.ingest(*(e for p in phones for e in (
        event("crm.consent", at("2026-11-01T09:00"), {"phone": p}, purpose="sms", granted=True),
        purchase({"phone": p}, at("2026-11-01T10:00"), "100.00", store=store))))
    ids = {p: flow.customer_id(phone=p) for p in phones}
    phone_of = {c: p for p, c in ids.items()}

    definition = {"name": "Double points week", "objective": "promotion", "channel": "sms",
                  "audience": {"home_stores": [store]}, "offer": {"text": "double points until the 20th"},
                  "bonus_multiplier": "2", "starts_at": "2026-11-10T00:00:00+08:00",
                  "ends_at": "2026-11-20T00:00:00+08:00", "control_share": "0.5", "attribution_window_days": 14}
    loyalty = flow.platform["loyalty"]
    # Loyalty reads the bonus grants late: a treatment member's purchase reaches it first.
    with loyalty.holding(topics.CAMPAIGN_EVENTS):
        cid = launch_split_campaign(flow, definition, treatment=2, control=1)
        audience = flow.campaigns.get(f"/v1/campaigns/{cid}/audience").json()["items"]
        assert len(audience) == MEMBERS
        treated = sorted(m["member_id"] for m in audience if m["group"] == "treatment")
        controls = sorted(m["member_id"] for m in audience if m["group"] == "control")
        early, t1, c1 = treated[0], treated[1], controls[0]
        r = flow.identity.post("/v1/events", json=[
            purchase({"phone": phone_of[early]}, at("2026-11-11T10:00"), "250.00", store=store)])
        assert r.status_code == 202
        # 100 from the first purchase + 250 at the base rate: the grant has not arrived.
        flow.platform.pump_until(lambda: flow.account(early)["points_balance"] == 350
                                 and flow.view(early)["loyalty"]["points_balance"] == 350,
                                 what="the early purchase rated without its bonus")
    flow.platform.settle()
    # The grant arrived: the purchase inside the window earns floor(250 x 2) = 500, 250 more.
    assert flow.view(early)["loyalty"]["points_balance"] == 100 + 500

    flow.ingest(purchase({"phone": phone_of[t1]}, at("2026-11-12T15:00"), "300.00", store=store),
                purchase({"phone": phone_of[c1]}, at("2026-11-12T15:00"), "300.00", store=store),
                # After the window (it ends at the start of the 20th): the base rate only.
                purchase({"phone": phone_of[t1]}, at("2026-11-20T10:00"), "50.00", store=store))
    assert flow.view(t1)["loyalty"]["points_balance"] == 100 + 600 + 50
    assert flow.view(c1)["loyalty"]["points_balance"] == 100 + 300
    bonus = [(e["rule"], e["points"]) for e in
             flow.loyalty.get(f"/v1/loyalty/accounts/{t1}/ledger").json()["items"] if e["rule"].startswith("campaign")]
    assert bonus == [(f"campaign:{cid}", 300)]

    converted = {early, t1, c1}  # bought inside the 14 days from the launch
    for m in audience:
        part = flow.view(m["member_id"])["campaigns"]
        assert [(c["campaign_id"], c["group"], c["converted"]) for c in part] == [
            (cid, m["group"], m["member_id"] in converted)], m["member_id"]
        if m["member_id"] not in converted:
            assert flow.view(m["member_id"])["loyalty"]["points_balance"] == 100

    flow.assert_replays_change_nothing(sorted(ids.values()), [cid])
