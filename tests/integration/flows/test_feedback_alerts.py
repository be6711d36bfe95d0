"""Flow 5: a complaint raises a red alert for the customer's home store at once; a survey score of 5 raises
the low-score alert; identity's view lists both, most severe first, until the store resolves one."""

from __future__ import annotations

from tests.integration.flows.support import Flow, at, event, new_phone, purchase


def test_a_complaint_is_a_red_alert_for_the_home_store_and_a_score_of_5_an_alert(flow: Flow):
    flow.set_clocks(at("2026-11-20T12:00"))
    phone = new_phone()
    who = {"phone": phone}
    # Home store SH-004: two purchase days there against one at SH-009.
    flow.ingest(purchase(who, at("2026-10-20T12:00"), "120.00", store="SH-004"),
                purchase(who, at("2026-10-27T12:00"), "80.00", store="SH-004"),
                purchase(who, at("2026-11-03T12:00"), "60.00", store="SH-009"))
    customer = flow.customer_id(phone=phone)
    assert flow.view(customer)["alerts"]["open"] == []

    # Complained through WeChat about the other store: the alert goes to the store that owns the customer.
    flow.ingest(event("crm.complaint", at("2026-11-20T11:00"), who, source="wechat/oa",
                      text="waited 40 minutes", store_id="SH-009", severity="high"))
    complaint = flow.open_alerts(customer)["complaint"]
    assert (complaint["severity"], complaint["status"], complaint["store_id"]) == ("red", "open", "SH-004")
    assert [(a["alert_id"], a["type"], a["severity"], a["store_id"]) for a in flow.view(customer)["alerts"]["open"]] \
        == [(complaint["alert_id"], "complaint", "red", "SH-004")]

    flow.ingest(event("crm.survey", at("2026-11-20T11:30"), who, source="web/shop", score=5,
                      comment="so-so"))
    survey = flow.open_alerts(customer)["survey_low"]
    assert (survey["severity"], survey["store_id"], survey["detail"]["value"]) == ("yellow", "SH-004", 5)
    assert [(a["alert_id"], a["type"], a["severity"]) for a in flow.view(customer)["alerts"]["open"]] == [
        (complaint["alert_id"], "complaint", "red"), (survey["alert_id"], "survey_low", "yellow")]

    # The store resolves the complaint through the alerts API: the view stops listing it.
    r = flow.alerts_api.post(f"/v1/alerts/{complaint['alert_id']}/resolve", json={"note": "apologised, voucher sent"})
    assert r.status_code == 200, r.text
    flow.platform.settle()
    assert [a["alert_id"] for a in flow.view(customer)["alerts"]["open"]] == [survey["alert_id"]]

    flow.assert_replays_change_nothing([customer])
