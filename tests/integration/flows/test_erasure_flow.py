"""Issue 12, erasure and export across the four services in this process, against a real broker: an
erased customer is gone from every service's API, loyalty's ledger totals and a campaign's results stay
exact, a replay of every channel topic (and of every service's whole input) does not bring them back,
and the export holds exactly what the four services' APIs show."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crm.broker import free_port
from services.alerts.config import AlertsConfig
from services.campaigns.config import CampaignsSettings
from services.identity.app import create_app as identity_app
from services.loyalty.config import LoyaltySettings
from shared.contract import topics
from shared.settings import Settings
from shared.storage.base import sqlite_path
from shared.streaming.kafka import ensure_topics
from tests.integration.flows.support import ADMIN, OPERATOR, READER, Flow, at, event, new_phone, purchase
from tests.integration.flows.test_campaign_bonus import launch_split_campaign
from tests.integration.platform_in_process import Platform

pytestmark = pytest.mark.broker

AUTH = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def flow(broker, tmp_path) -> Iterator[Flow]:
    """The four services; identity's export reaches the other three through their in-process APIs."""
    settings = Settings(_env_file=None, kafka_bootstrap=broker, data_dir=str(tmp_path),
                        api_keys=f"{ADMIN}:admin,{OPERATOR}:operator,{READER}:reader",
                        pseudonym_secret="erasure-test-secret-0123456789")
    ensure_topics(settings)
    apis: dict[str, Any] = {}

    def peer_get(name: str, path: str, headers: dict[str, str]) -> httpx.Response:
        return apis[name].get(path, headers=headers)

    platform = Platform(settings, options={
        "identity": {"peer_get": peer_get},
        "loyalty": {"config": LoyaltySettings(_env_file=None)},
        "alerts": {"config": AlertsConfig(_env_file=None)},
        "campaigns": {"config": CampaignsSettings(_env_file=None)},
    })
    for name in ("loyalty", "alerts", "campaigns"):
        apis[name] = platform[name].api("no-key-of-its-own")  # the caller's own key is forwarded
    try:
        yield Flow(platform)
    finally:
        platform.close()


def _person(phone: str, openid: str, name: str, birthday: str) -> list[dict]:
    return [
        event("crm.profile", at("2026-11-01T09:00"), {"phone": phone, "wechat_openid": openid}, source="wechat/oa",
              name=name, birthday=birthday, email=f"{openid}@example.com"),
        event("crm.consent", at("2026-11-01T09:05"), {"phone": phone}, purpose="sms", granted=True),
        purchase({"phone": phone}, at("2026-11-02T10:00"), "268.50", store="SH-ERA"),
        event("crm.complaint", at("2026-11-03T10:00"), {"phone": phone}, text=f"{name} waited an hour",
              store_id="SH-ERA", severity="high"),
    ]


def _ledger_total(data_dir: Path) -> int:
    """Every point ever posted, straight from loyalty's file (what finance reconciles against)."""
    path = sqlite_path(f"sqlite:///{data_dir}/crm.db", "loyalty")
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COALESCE(SUM(points), 0) FROM ledger").fetchone()[0]


def _erase(flow: Flow, customer: str, reason: str = "the customer asked (ticket 4711)") -> str:
    admin = flow.platform["identity"].api(ADMIN)
    r = admin.post(f"/v1/customers/{customer}/erasure", json={"reason": reason})
    assert r.status_code == 202, r.text
    erasure_id = r.json()["erasure_id"]
    assert admin.get(f"/v1/erasures/{erasure_id}").json()["services"]["identity"] == "done"
    flow.platform.settle()
    return erasure_id


def _erased_count(flow: Flow) -> float:
    text = flow.platform["identity"].api(ADMIN).get("/metrics").text
    found = re.search(r'^crm_handled_total\{what="erased"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_an_erased_customer_is_gone_everywhere_totals_stay_and_replays_do_not_bring_them_back(flow, tmp_path):
    flow.set_clocks(at("2026-11-10T09:00"))
    gone_phone, kept_phone = new_phone(), new_phone()
    flow.ingest(*_person(gone_phone, "oERASE1", "Erased Person", "1990-04-01"),
                *_person(kept_phone, "oKEEP1", "Kept Person", "1985-06-02"),
                purchase({"phone": kept_phone}, at("2026-11-04T10:00"), "100.00", store="SH-ERA"))
    gone, kept = flow.customer_id(phone=gone_phone), flow.customer_id(phone=kept_phone)
    definition = {"name": "Erasure counts", "objective": "promotion", "channel": "sms",
                  "audience": {"home_stores": ["SH-ERA"]}, "offer": {"text": "hello"},
                  "starts_at": "2026-11-10T00:00:00+08:00", "ends_at": "2026-11-20T00:00:00+08:00",
                  "control_share": "0.5", "attribution_window_days": 14}
    campaign = launch_split_campaign(flow, definition, treatment=1, control=1)
    flow.platform.settle()
    # Both buy again inside the window: conversions the results count.
    flow.ingest(purchase({"phone": gone_phone}, at("2026-11-12T10:00"), "50.00", store="SH-ERA"),
                purchase({"phone": kept_phone}, at("2026-11-12T11:00"), "30.00", store="SH-ERA"))
    results_before = flow.campaigns.get(f"/v1/campaigns/{campaign}/results").json()
    assert flow.alerts(gone), "the complaint raised an alert to erase"
    kept_before = flow.snapshot([kept])
    # 1 point per 1.00 CNY, floor per purchase: 268 + 50 for one, 268 + 100 + 30 for the other.
    assert (flow.account(gone)["points_balance"], flow.account(kept)["points_balance"]) == (318, 398)
    assert _ledger_total(tmp_path) == 318 + 398

    # A copy of a sealed field taken before the erasure (a replica, a backup) in every service.
    copies = {name: {who: flow.platform[name].deps.store.keys.seal(who, "backup.copy", "Erased Person")
                     for who in (gone, kept)} for name in ("identity", "loyalty", "alerts", "campaigns")}
    # Staff should write a ticket number, but a reason naming the person must not keep them in clear either.
    erasure_id = _erase(flow, gone, reason="Erased Person asked to be forgotten (ticket 4711)")
    status = flow.platform["identity"].api(ADMIN).get(f"/v1/erasures/{erasure_id}").json()
    # Crypto-shredding: the erased customer's data keys are gone in every service, so no old copy opens;
    # everyone else's still does.
    for name, sealed in copies.items():
        keys = flow.platform[name].deps.store.keys
        assert (keys.open(gone, "backup.copy", sealed[gone]), keys.open(kept, "backup.copy", sealed[kept])) == (
            None, "Erased Person"), name
    assert (status["status"], status["services"]) == ("done", {s: "done" for s in
                                                              ("identity", "loyalty", "alerts", "campaigns")})

    def assert_gone() -> None:
        admin = flow.platform["identity"].api(ADMIN)
        assert admin.get(f"/v1/customers/{gone}").status_code == 404
        assert admin.get("/v1/customers/lookup", params={"phone": gone_phone}).status_code == 404
        assert admin.get("/v1/customers/lookup", params={"wechat_openid": "oERASE1"}).status_code == 404
        assert admin.get(f"/v1/customers/{gone}/timeline").status_code == 404
        for path in ("", "/ledger", "/redemptions", "/tiers"):
            r = flow.loyalty.get(f"/v1/loyalty/accounts/{gone}{path}")
            assert r.status_code == 404 and r.json()["error"]["code"] == "account_not_found", (path, r.text)
        assert flow.alerts(gone) == []
        audience = flow.campaigns.get(f"/v1/campaigns/{campaign}/audience", params={"limit": 500}).json()["items"]
        assert gone not in {m["member_id"] for m in audience} and kept in {m["member_id"] for m in audience}
        # Totals: every point posted is still in the ledger, the campaign's figures are unchanged.
        assert _ledger_total(tmp_path) == 318 + 398
        assert flow.campaigns.get(f"/v1/campaigns/{campaign}/results").json() == results_before
        assert flow.snapshot([kept]) == kept_before

    assert_gone()
    # Identity's file and write-ahead log, checkpointed by the erasure: no name of the person given in the reason
    # (in the erasure row or in the audit log) nor in the profile or the complaint text.
    identity_db = Path(sqlite_path(f"sqlite:///{tmp_path}/crm.db", "identity"))
    on_disk = b"".join(p.read_bytes() for p in (identity_db, identity_db.with_name(identity_db.name + "-wal"))
                       if p.exists())
    assert b"Erased Person" not in on_disk and b"Erased" not in on_disk
    # The same channel events again (a replay of the channel topics) are dropped before identity keeps them.
    before = _erased_count(flow)
    assert flow.platform.republish(topics.CHANNEL_TOPICS.values()) > 0
    flow.platform.settle()
    assert _erased_count(flow) - before == 5  # the five events that named the erased person
    assert_gone()
    # Every service consumes its whole input again from offset 0 (resolved events of the person included).
    flow.platform.replay()
    assert_gone()
    # A later event with one of the erased identifiers is dropped as well, and counted, not dead-lettered.
    flow.ingest(purchase({"phone": gone_phone}, at("2026-11-15T10:00"), "20.00", store="SH-ERA"))
    assert flow.platform["identity"].api(ADMIN).get("/v1/identity/summary").json()["dead_letters"] == 0
    assert_gone()


def test_erasure_needs_a_reason_an_admin_and_a_known_customer(flow):
    phone = new_phone()
    flow.ingest(purchase({"phone": phone}, at("2026-11-02T10:00"), "10.00"))
    customer = flow.customer_id(phone=phone)
    admin = flow.platform["identity"].api(ADMIN)
    for body in ({}, {"reason": "   "}):
        r = admin.post(f"/v1/customers/{customer}/erasure", json=body)
        assert r.status_code == 422 and r.json()["error"]["details"][0]["loc"] == "body.reason", r.text
    r = flow.identity.post(f"/v1/customers/{customer}/erasure", json={"reason": "asked"})  # an operator
    assert r.status_code == 403
    assert admin.post("/v1/customers/c_nobody/erasure", json={"reason": "asked"}).status_code == 404
    assert admin.get("/v1/erasures/er_nothing").status_code == 404
    assert admin.get(f"/v1/customers/{customer}").status_code == 200


def test_the_export_holds_exactly_what_the_four_services_apis_show(flow):
    flow.set_clocks(at("2026-11-10T09:00"))
    phone = new_phone()
    flow.ingest(*_person(phone, "oEXPORT1", "Export Person", "1992-02-03"))
    customer = flow.customer_id(phone=phone)
    launch_split_campaign(flow, {"name": "Export", "objective": "promotion", "channel": "sms",
                                 "audience": {"home_stores": ["SH-ERA"]}, "offer": {"text": "hi"},
                                 "starts_at": "2026-11-10T00:00:00+08:00", "ends_at": "2026-11-20T00:00:00+08:00",
                                 "control_share": "0.01"}, treatment=0, control=0)
    reward = flow.loyalty.post("/v1/loyalty/rewards", json={"name": "Kit", "points_cost": 100, "stock": 3}).json()
    assert flow.loyalty.post(f"/v1/loyalty/accounts/{customer}/redemptions",
                             json={"reward_id": reward["reward_id"]}).status_code == 201
    flow.platform.settle()

    admin = flow.platform["identity"].api(ADMIN)
    r = admin.get(f"/v1/customers/{customer}/export")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert set(doc) == {"customer_id", "identity", "loyalty", "alerts", "campaigns"}
    loyalty = flow.platform["loyalty"].api(ADMIN)
    # The export is the person's data in clear: what the read routes show an admin who reveals it.
    view = admin.get(f"/v1/customers/{customer}", params={"reveal": "true"}).json()
    assert doc["identity"]["profile"] == view
    assert view["attributes"]["name"] == "Export Person" and view["consents"]["sms"]["granted"] is True
    assert {i["type"] for i in view["identifiers"]} == {"phone", "wechat_openid"}
    assert doc["identity"]["timeline"] == admin.get(f"/v1/customers/{customer}/timeline",
                                                     params={"limit": 500, "reveal": "true"}).json()["items"]
    assert len(doc["identity"]["timeline"]) == 4
    assert doc["loyalty"]["account"] == loyalty.get(f"/v1/loyalty/accounts/{customer}").json()
    assert doc["loyalty"]["ledger"] == loyalty.get(f"/v1/loyalty/accounts/{customer}/ledger",
                                                   params={"limit": 500, "reveal": "true"}).json()["items"]
    assert doc["loyalty"]["redemptions"] == loyalty.get(f"/v1/loyalty/accounts/{customer}/redemptions",
                                                        params={"reveal": "true"}).json()["items"]
    assert len(doc["loyalty"]["redemptions"]) == 1
    assert doc["loyalty"]["tiers"] == loyalty.get(f"/v1/loyalty/accounts/{customer}/tiers").json()
    alerts = flow.platform["alerts"].api(ADMIN).get("/v1/alerts", params={"customer_id": customer, "limit": 500,
                                                                          "reveal": "true"})
    # ``age_s`` is counted at each request (a second may pass between the two): the rest is compared as is.
    def aged_out(items: list[dict]) -> list[dict]:
        return [{k: v for k, v in a.items() if k != "age_s"} for a in items]

    assert aged_out(doc["alerts"]["alerts"]) == aged_out(alerts.json()["items"]) and len(doc["alerts"]["alerts"]) >= 1
    assert doc["campaigns"]["campaigns"] == view["campaigns"] and len(view["campaigns"]) == 1
    # Admin only: the export is every personal field in clear.
    assert flow.platform["identity"].api(READER).get(f"/v1/customers/{customer}/export").status_code == 403
    # Each service records that it handed the person's data out (a direct call to one service too).
    flow.platform.settle()
    entries = admin.get("/v1/audit", params={"action": "privacy.export", "customer_id": customer}).json()["items"]
    assert sorted(e["service"] for e in entries) == ["alerts", "campaigns", "identity", "loyalty"]


def test_an_export_names_the_service_that_does_not_answer(flow, tmp_path):
    phone = new_phone()
    flow.ingest(purchase({"phone": phone}, at("2026-11-02T10:00"), "10.00"))
    customer = flow.customer_id(phone=phone)
    # Identity over the same store, with the real HTTP client and nothing listening on loyalty's port.
    settings = flow.platform.settings.model_copy(update={"loyalty_port": free_port()})
    alone = identity_app(settings, store=flow.platform["identity"].deps.store)
    from fastapi.testclient import TestClient

    r = TestClient(alone.api, headers=AUTH).get(f"/v1/customers/{customer}/export")
    assert r.status_code == 503, r.text
    assert r.json()["error"]["details"] == {"service": "loyalty"} and "loyalty" in r.json()["error"]["message"]
