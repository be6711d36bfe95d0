"""Issue 14: a staff correction reaches every service the normal way, on a real broker: identity announces it
as a resolved ``crm.profile`` event from ``staff/<who>``, so alerts' birthday alert follows a corrected
birthday and its manager follows an account manager assignment, exactly once, until a channel reports a
value dated after the correction. A consent staff record reaches campaigns' consent check the same way."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

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

NOW = at("2026-11-20T12:00")


@pytest.fixture
def flow(broker, tmp_path) -> Iterator[Flow]:
    """The four services, every clock (identity's too) at ``NOW``: a correction is dated then."""
    settings = Settings(_env_file=None, kafka_bootstrap=broker, data_dir=str(tmp_path),
                        api_keys=f"{ADMIN}:admin,{OPERATOR}:operator,{READER}:reader",
                        pseudonym_secret="corrections-test-secret-0123456789")
    with running_flow(settings) as flow:
        flow.set_clocks(NOW)
        flow.platform.set_clocks(NOW, "identity")
        yield flow


def _profile(phone: str, when, **data) -> dict:
    return event("crm.profile", when, {"phone": phone}, source="wechat/oa", **data)


def _birthday_alert(flow: Flow, customer_id: str) -> dict:
    return flow.open_alerts(customer_id)["birthday"]


def _no_dead_letters(flow: Flow) -> None:
    for name in ("identity", "loyalty", "alerts", "campaigns"):
        letters = flow.platform[name].api(ADMIN).get("/v1/deadletters").json()["items"]
        assert letters == [], name


def test_a_corrected_birthday_moves_the_birthday_alert_until_a_newer_channel_value(flow: Flow):
    phone = new_phone()
    flow.ingest(purchase({"phone": phone}, at("2026-11-02T10:00"), "100.00", store="S01"),
                _profile(phone, at("2026-11-01T09:00"), birthday="1990-11-24"))
    c = flow.customer_id(phone=phone)
    assert _birthday_alert(flow, c)["detail"]["days_until"] == 4

    r = flow.identity.patch(f"/v1/customers/{c}/profile", json={"birthday": "1990-11-26", "reason": "ID checked"})
    assert r.status_code == 200, r.text
    flow.platform.settle()
    alert = _birthday_alert(flow, c)
    assert alert["detail"]["days_until"] == 6

    # An offline till's upload dated before the correction does not undo it, in alerts as in identity.
    flow.ingest(_profile(phone, at("2026-11-10T09:00"), birthday="1990-11-23"))
    assert _birthday_alert(flow, c)["detail"]["days_until"] == 6
    flow.assert_replays_change_nothing([c])
    assert [a["alert_id"] for a in flow.alerts(c, type="birthday")] == [alert["alert_id"]]

    # A channel value dated after the correction wins again.
    flow.ingest(_profile(phone, NOW + timedelta(hours=1), birthday="1990-11-22"))
    assert _birthday_alert(flow, c)["detail"]["days_until"] == 2
    assert flow.view(c)["attribute_sources"]["birthday"]["channel"] == "wechat"
    _no_dead_letters(flow)


def test_an_assigned_account_manager_owns_the_customers_alerts_and_ending_it_gives_back_the_channels(flow: Flow):
    phone = new_phone()
    flow.ingest(purchase({"phone": phone}, at("2026-11-02T10:00"), "100.00", store="S01"),
                _profile(phone, at("2026-11-01T09:00"), birthday="1990-11-24", attributes={"account_manager": "am-3"}))
    c = flow.customer_id(phone=phone)
    assert _birthday_alert(flow, c)["manager"] == "am-3"

    r = flow.identity.put(f"/v1/customers/{c}/account-manager", json={"account_manager": "am-7",
                                                                     "reason": "key customer"})
    assert r.status_code == 200, r.text
    flow.platform.settle()
    assert _birthday_alert(flow, c)["manager"] == "am-7"
    mine = flow.alerts_api.get("/v1/alerts", params={"manager": "am-7"}).json()["items"]
    assert [(a["customer_id"], a["type"]) for a in mine] == [(c, "birthday")]
    flow.assert_replays_change_nothing([c])

    flow.platform.set_clocks(NOW + timedelta(minutes=1), "identity")
    r = flow.identity.put(f"/v1/customers/{c}/account-manager", json={"account_manager": None,
                                                                     "reason": "back to the counter"})
    assert r.status_code == 200, r.text
    flow.platform.settle()
    assert _birthday_alert(flow, c)["manager"] == "am-3"
    assert flow.alerts_api.get("/v1/alerts", params={"manager": "am-7"}).json()["items"] == []

    flow.platform.set_clocks(NOW + timedelta(minutes=2), "identity")
    r = flow.identity.put(f"/v1/customers/{c}/account-manager", json={"account_manager": "am-7",
                                                                     "reason": "key customer again"})
    assert r.status_code == 200, r.text
    flow.ingest(_profile(phone, NOW + timedelta(hours=1), attributes={"account_manager": "am-9"}))
    assert _birthday_alert(flow, c)["manager"] == "am-9"  # a channel's newer value wins, as for any field
    _no_dead_letters(flow)


def test_a_consent_staff_record_decides_campaigns_consent_check_until_a_newer_channel_consent(flow: Flow):
    store, phone = new_id("SH"), new_phone()
    flow.ingest(event("crm.consent", at("2026-11-01T09:00"), {"phone": phone}, purpose="sms", granted=True),
                purchase({"phone": phone}, at("2026-11-02T10:00"), "100.00", store=store))
    c = flow.customer_id(phone=phone)
    r = flow.campaigns.post("/v1/campaigns", json={
        "name": "Winter offer", "objective": "promotion", "channel": "sms", "audience": {"home_stores": [store]},
        "starts_at": "2026-11-21T00:00:00+08:00", "ends_at": "2026-11-30T00:00:00+08:00"})
    assert r.status_code == 201, r.text
    cid = r.json()["campaign_id"]

    def preview() -> tuple[int, int, dict]:
        p = flow.campaigns.get(f"/v1/campaigns/{cid}/preview").json()
        return p["matched"], p["members"], {k: n for k, n in p["excluded"].items() if n}

    assert preview() == (1, 1, {})
    r = flow.identity.put(f"/v1/customers/{c}/consents/sms", json={"granted": False,
                                                                   "reason": "asked at the counter: no more texts"})
    assert r.status_code == 200, r.text
    flow.platform.settle()
    flow.set_clocks(NOW + timedelta(minutes=1))  # campaigns looks after the correction
    assert preview() == (1, 0, {"opted_out": 1})
    flow.assert_replays_change_nothing([c])
    assert preview() == (1, 0, {"opted_out": 1})

    flow.ingest(event("crm.consent", NOW + timedelta(hours=1), {"phone": phone}, source="wechat/oa", purpose="sms",
                      granted=True))
    flow.set_clocks(NOW + timedelta(hours=2))
    assert preview() == (1, 1, {})
    _no_dead_letters(flow)
