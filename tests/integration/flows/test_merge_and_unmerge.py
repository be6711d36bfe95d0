"""Flow 6: a WeChat-only customer with points, an open alert and a campaign membership is bound to a phone
customer; loyalty, alerts and campaigns follow the survivor and identity's view of it shows everything;
an unmerge through identity's API gives each side back exactly its own in every part of the view."""

from __future__ import annotations

from typing import Any

from shared.contract import topics
from tests.integration.flows.support import Flow, at, event, new_id, new_phone, purchase


def parts(view: dict[str, Any]) -> dict[str, Any]:
    """The parts of the view the other services fill in."""
    return {"points_balance": view["loyalty"]["points_balance"] if view["loyalty"] else None,
            "tier": view["loyalty"]["tier"] if view["loyalty"] else None,
            "alerts": view["alerts"]["open"], "campaigns": view["campaigns"]}


def test_a_merge_is_followed_by_every_service_and_an_unmerge_gives_each_side_back_its_own(flow: Flow):
    flow.set_clocks(at("2026-11-20T12:00"))
    openid = new_id("oX")
    wechat = {"wechat_openid": openid}
    phone = new_phone()
    wechat_store = new_id("SH")
    flow.ingest(event("crm.follow", at("2026-11-01T09:00"), wechat, source="wechat/oa"),
                purchase(wechat, at("2026-11-02T20:00"), "200.00", store=wechat_store, source="wechat/mini"),
                event("crm.complaint", at("2026-11-19T21:00"), wechat, source="wechat/oa",
                      text="parcel arrived broken", severity="high"),
                purchase({"phone": phone}, at("2026-11-05T12:00"), "400.00", store="SH-001"))
    w, p = flow.customer_id(wechat_openid=openid), flow.customer_id(phone=phone)
    assert w != p

    # A WeChat campaign for the customers of the WeChat customer's store: the follower is its one member.
    r = flow.campaigns.post("/v1/campaigns", json={
        "name": "Welcome back", "objective": "loyalty", "channel": "wechat",
        "audience": {"home_stores": [wechat_store]}, "starts_at": "2026-11-20T00:00:00+08:00",
        "ends_at": "2026-11-30T00:00:00+08:00", "control_share": "0.5"})
    assert r.status_code == 201, r.text
    cid = r.json()["campaign_id"]
    assert flow.campaigns.post(f"/v1/campaigns/{cid}/launch").status_code == 200
    flow.platform.settle()
    [member] = flow.campaigns.get(f"/v1/campaigns/{cid}/audience").json()["items"]
    assert member["member_id"] == w

    complaint = flow.open_alerts(w)["complaint"]
    own = {w: parts(flow.view(w)), p: parts(flow.view(p))}
    assert own[w]["points_balance"] == 200
    assert [(a["alert_id"], a["type"], a["store_id"]) for a in own[w]["alerts"]] == [
        (complaint["alert_id"], "complaint", wechat_store)]
    assert [(c["campaign_id"], c["group"], c["converted"]) for c in own[w]["campaigns"]] == [
        (cid, member["group"], False)]
    assert own[p] == {"points_balance": 400, "tier": None, "alerts": [], "campaigns": []}

    # The follower gives the phone number in the mini-program: the two records become one customer.
    flow.ingest(event("crm.profile", at("2026-11-20T11:50"), {"phone": phone, **wechat}, source="wechat/mini",
                      city="Shanghai"))
    assert flow.customer_id(wechat_openid=openid) == p
    merged = flow.view(p)
    assert merged["merged_from"] == [w]
    assert merged["stats"]["total_spend"] == "600.00"
    assert merged["loyalty"]["points_balance"] == 600
    assert flow.account(w)["customer_id"] == p
    # The complaint alert followed the survivor; its owner is now the survivor's home store (one
    # purchase day at each store: the most recent day's store wins).
    assert [(a["alert_id"], a["type"], a["store_id"]) for a in merged["alerts"]["open"]] == [
        (complaint["alert_id"], "complaint", "SH-001")]
    assert flow.open_alerts(p)["complaint"]["alert_id"] == complaint["alert_id"]
    assert [(c["campaign_id"], c["group"], c["converted"]) for c in merged["campaigns"]] == [
        (cid, member["group"], False)]
    assert flow.campaigns.get(f"/v1/campaigns/{cid}/audience").json()["items"][0]["customer_id"] == p

    # While merged: the survivor buys inside the campaign's attribution window (the membership converts),
    # and a till that was offline uploads an older WeChat purchase (it stays the WeChat record's).
    flow.set_clocks(at("2026-11-21T12:00"))
    flow.ingest(purchase({"phone": phone}, at("2026-11-21T10:00"), "100.00", store="SH-001"),
                purchase(wechat, at("2026-11-03T20:00"), "50.00", store=wechat_store, source="wechat/mini"))
    merged = flow.view(p)
    assert (merged["loyalty"]["points_balance"], merged["stats"]["total_spend"]) == (750, "750.00")
    assert [(c["campaign_id"], c["group"], c["converted"]) for c in merged["campaigns"]] == [
        (cid, member["group"], True)]
    assert [(a["type"], a["store_id"]) for a in merged["alerts"]["open"]] == [("complaint", "SH-001")]

    merges = flow.identity.get(f"/v1/customers/{p}/merges").json()["items"]
    assert [(m["survivor_id"], m["merged_id"]) for m in merges] == [(p, w)]
    r = flow.identity.post(f"/v1/customers/{p}/unmerge", json={"merge_id": merges[0]["merge_id"]})
    assert r.status_code == 200, r.text
    flow.platform.settle()

    assert flow.customer_id(wechat_openid=openid) == w
    # Each side has its own again: its points (and only its own purchases), alerts and membership; the
    # conversion was the phone customer's purchase, so the WeChat customer's membership is unconverted.
    assert {w: parts(flow.view(w)), p: parts(flow.view(p))} == {
        w: {**own[w], "points_balance": 250}, p: {**own[p], "points_balance": 500}}
    assert (flow.view(w)["stats"]["total_spend"], flow.view(p)["stats"]["total_spend"]) == ("250.00", "500.00")
    assert (flow.account(w)["points_balance"], flow.account(p)["points_balance"]) == (250, 500)
    assert flow.open_alerts(p) == {}
    assert flow.open_alerts(w)["complaint"]["store_id"] == wechat_store
    assert flow.campaigns.get(f"/v1/campaigns/{cid}/audience").json()["items"][0]["customer_id"] == w

    flow.assert_replays_change_nothing([w, p], [cid])


def test_a_merge_that_reaches_the_services_before_the_events_it_concerns_ends_the_same(flow: Flow):
    flow.set_clocks(at("2026-11-20T12:00"))
    openid, phone, wechat_store = new_id("oX"), new_phone(), new_id("SH")
    wechat = {"wechat_openid": openid}
    platform = flow.platform
    downstream = [platform[n] for n in ("loyalty", "alerts", "campaigns")]
    with downstream[0].holding(topics.CUSTOMER_EVENTS), downstream[1].holding(topics.CUSTOMER_EVENTS), \
            downstream[2].holding(topics.CUSTOMER_EVENTS):
        post(flow, purchase(wechat, at("2026-11-02T20:00"), "200.00", store=wechat_store, source="wechat/mini"),
             event("crm.complaint", at("2026-11-19T21:00"), wechat, source="wechat/oa",
                   text="parcel arrived broken", severity="high"),
             purchase({"phone": phone}, at("2026-11-05T12:00"), "400.00", store="SH-001"))
        w = platform.pump_until(lambda: lookup(flow, wechat_openid=openid), what="the WeChat customer")
        p = platform.pump_until(lambda: lookup(flow, phone=phone), what="the phone customer")
        post(flow, event("crm.profile", at("2026-11-20T11:50"), {"phone": phone, **wechat}, source="wechat/mini",
                         city="Shanghai"))
        # The services learn of the merge while the events it concerns are still on their way.
        platform.pump_until(lambda: all(s.handled[topics.CUSTOMER_MERGED] == platform.published[topics.CUSTOMER_MERGED]
                                        == 1 for s in downstream), what="the merge consumed first")
    platform.settle()

    merged = flow.view(p)
    assert merged["merged_from"] == [w]
    assert merged["loyalty"]["points_balance"] == 600
    assert [(a["type"], a["store_id"]) for a in merged["alerts"]["open"]] == [("complaint", "SH-001")]

    merges = flow.identity.get(f"/v1/customers/{p}/merges").json()["items"]
    r = flow.identity.post(f"/v1/customers/{p}/unmerge", json={"merge_id": merges[0]["merge_id"]})
    assert r.status_code == 200, r.text
    platform.settle()
    # The complaint was the WeChat customer's: its alert goes with it, whatever order the merge came in.
    assert parts(flow.view(p)) == {"points_balance": 400, "tier": None, "alerts": [], "campaigns": []}
    back = parts(flow.view(w))
    assert back["points_balance"] == 200
    assert [(a["type"], a["severity"], a["store_id"]) for a in back["alerts"]] == [("complaint", "red", wechat_store)]
    assert flow.open_alerts(p) == {}
    assert flow.open_alerts(w)["complaint"]["store_id"] == wechat_store

    flow.assert_replays_change_nothing([w, p])


def post(flow: Flow, *events: dict[str, Any]) -> None:
    r = flow.identity.post("/v1/events", json=list(events))
    assert r.status_code == 202, r.text


def lookup(flow: Flow, **identifier: str) -> str | None:
    r = flow.identity.get("/v1/customers/lookup", params=identifier)
    return r.json()["customer_id"] if r.status_code == 200 else None


def test_when_both_sides_have_a_complaint_alert_the_merge_folds_them_and_the_unmerge_splits_them(flow: Flow):
    flow.set_clocks(at("2026-11-20T12:00"))
    openid, phone, wechat_store = new_id("oX"), new_phone(), new_id("SH")
    wechat = {"wechat_openid": openid}
    flow.ingest(purchase(wechat, at("2026-11-02T20:00"), "200.00", store=wechat_store, source="wechat/mini"),
                event("crm.complaint", at("2026-11-19T21:00"), wechat, source="wechat/oa", text="parcel broken"),
                purchase({"phone": phone}, at("2026-11-05T12:00"), "400.00", store="SH-001"),
                event("crm.complaint", at("2026-11-18T21:00"), {"phone": phone}, text="rude staff"))
    w, p = flow.customer_id(wechat_openid=openid), flow.customer_id(phone=phone)
    own = {w: parts(flow.view(w)), p: parts(flow.view(p))}
    assert [(a["type"], a["repeats"]) for a in own[w]["alerts"]] == [("complaint", 0)]
    assert [(a["type"], a["repeats"]) for a in own[p]["alerts"]] == [("complaint", 0)]

    flow.ingest(event("crm.profile", at("2026-11-20T11:50"), {"phone": phone, **wechat}, source="wechat/mini",
                      city="Shanghai"))
    # One open alert per customer and type: the survivor's complaint alert counts the other as a repeat.
    merged = parts(flow.view(p))
    assert merged["points_balance"] == 600
    assert [(a["alert_id"], a["type"], a["repeats"]) for a in merged["alerts"]] == [
        (own[p]["alerts"][0]["alert_id"], "complaint", 1)]

    merges = flow.identity.get(f"/v1/customers/{p}/merges").json()["items"]
    assert flow.identity.post(f"/v1/customers/{p}/unmerge", json={"merge_id": merges[0]["merge_id"]}).status_code \
        == 200
    flow.platform.settle()
    assert {w: parts(flow.view(w)), p: parts(flow.view(p))} == own

    flow.assert_replays_change_nothing([w, p])
