"""Flow 3: 30 days before a lot expires loyalty's schedule announces it, alerts raises the points-expiring
alert with the exact points and date, identity's view lists it; past the expiry the points are gone."""

from __future__ import annotations

from datetime import timedelta

from tests.integration.flows.support import Flow, at, new_phone, purchase


def test_points_announced_30_days_ahead_raise_an_alert_the_view_lists_and_then_expire(flow: Flow):
    flow.set_clocks(at("2025-06-10T12:00"))
    phone = new_phone()
    flow.ingest(purchase({"phone": phone}, at("2025-06-10T10:00"), "500.00", store="SH-003"))
    customer = flow.customer_id(phone=phone)
    assert flow.view(customer)["loyalty"]["points_balance"] == 500
    flow.platform.run_timers()
    assert flow.view(customer)["alerts"]["open"] == []

    # Points expire 365 days after the day they were earned, at the end of that day (Shanghai time):
    # earned 2025-06-10, so they expire when 2026-06-10 ends, 2026-06-11T00:00+08:00.
    expires = at("2026-06-11T00:00")
    flow.set_clocks(expires - timedelta(days=30, hours=1))
    flow.platform.run_timers()
    assert flow.view(customer)["alerts"]["open"] == []  # not yet 30 days ahead

    flow.set_clocks(expires - timedelta(days=30))
    flow.platform.run_timers()
    expiring = flow.open_alerts(customer)["points_expiring"]
    assert expiring["detail"] == {"points": 500, "expires_at": "2026-06-10T16:00:00+00:00"}
    assert expiring["store_id"] == "SH-003"
    view = flow.view(customer)
    assert [(a["alert_id"], a["type"], a["severity"]) for a in view["alerts"]["open"]] == [
        (expiring["alert_id"], "points_expiring", "info")]
    assert view["loyalty"]["points_balance"] == 500
    assert view["loyalty"]["expiring"] == [{"points": 500, "expires_at": "2026-06-11T00:00:00+08:00"}]

    flow.set_clocks(expires + timedelta(minutes=1))
    flow.platform.run_timers()
    view = flow.view(customer)
    assert view["loyalty"]["points_balance"] == 0
    assert view["loyalty"]["expiring"] == []
    assert view["alerts"]["open"] == []  # nothing left to expire: the alert cleared itself
    assert flow.account(customer)["points_balance"] == 0
    ledger = flow.loyalty.get(f"/v1/loyalty/accounts/{customer}/ledger").json()["items"]
    assert [(e["rule"], e["points"]) for e in ledger] == [("expiry", -500), ("base", 500)]

    flow.assert_replays_change_nothing([customer])
