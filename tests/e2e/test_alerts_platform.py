"""The alerts service end to end: identity and alerts started as a user starts them, channel events in
through Kafka and identity's HTTP ingestion, results read through the alerts and identity HTTP APIs."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import lifetimes
import pytest
from kafka import KafkaProducer

from crm.broker import free_port
from services.alerts.store.sqlite import SqliteAlertsStore
from shared.contract import topics
from shared.contract.messages import PointsExpiryAnnounced, encode
from shared.storage.base import sqlite_path
from tests.conftest import wait_for

pytestmark = [pytest.mark.broker, pytest.mark.slow]

SHANGHAI = ZoneInfo("Asia/Shanghai")
CDNOW = os.path.join(os.path.dirname(lifetimes.__file__), "datasets", "CDNOW_sample.txt")


def _client(port: int, key: str = "test-admin") -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=60)


def _alerts_store(stack) -> SqliteAlertsStore:
    return SqliteAlertsStore(sqlite_path(f"sqlite:///{stack.data_dir}/crm.db", "alerts"))


def _seen(store: SqliteAlertsStore) -> int:
    return store.db.conn().execute("SELECT COUNT(*) FROM seen_events").fetchone()[0]


def _cdnow_events() -> list[dict]:
    """Each CDNOW sample purchase as a POS purchase event: a synthetic phone per customer, noon in Shanghai."""
    events = []
    for n, line in enumerate(open(CDNOW)):
        _, sample_id, day, cds, value = line.split()
        when = datetime(int(day[:4]), int(day[4:6]), int(day[6:]), 12, tzinfo=SHANGHAI)
        events.append({
            "specversion": "1.0", "id": f"cdnow-{n}", "source": "pos/CDNOW", "type": "crm.purchase",
            "time": when.isoformat(),
            "data": {"identity": {"phone": f"139{int(sample_id):08d}"}, "order_id": f"cdnow-{n}", "amount": value,
                     "currency": "CNY", "store_id": "CDNOW",
                     "items": [{"sku": "CD", "category": "music", "quantity": int(cds)}]},
        })
    return events


def test_the_cdnow_sample_through_the_whole_platform_gives_the_papers_churn_model(stack):
    identity_port, alerts_port = free_port(), free_port()
    stack.start_service("identity", api_port=identity_port)
    stack.start_service("alerts", api_port=alerts_port)
    events = _cdnow_events()
    assert len(events) == 6919
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", linger_ms=5)
    for e in events:
        producer.send(topics.CHANNEL_POS, json.dumps(e).encode(), key=e["data"]["identity"]["phone"][-4:].encode())
    producer.flush()
    producer.close()
    store = _alerts_store(stack)
    wait_for(lambda: _seen(store) == 6919, timeout=300, interval=1, what="alerts saw every purchase")
    with _client(alerts_port, "test-reader") as client:
        r = client.get("/v1/alerts/churn-model", params={"as_of": "1997-09-30"})
        assert r.status_code == 200, r.text
        model = r.json()
        for name, paper in {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}.items():
            assert model[name] == pytest.approx(paper, rel=0.01), name
        assert (model["customers"], model["repeat_purchases"]) == (2357, 2457)
        ranked = client.get("/v1/alerts/churn-model/customers", params={"as_of": "1997-09-30", "limit": 3}).json()
        assert ranked["total"] == 2357 and ranked["items"][0]["p_alive"] <= ranked["items"][2]["p_alive"]
    with _client(identity_port) as identity:
        customer = identity.get("/v1/customers/lookup", params={"phone": "13900000001"}).json()["customer_id"]
    with _client(alerts_port, "test-reader") as client:
        [one] = client.get(f"/v1/alerts/churn-model/customers/{customer}", params={"as_of": "1997-09-30"}).json()[
            "items"]
    # Sample customer 0001 (master id 00004) bought on 1997-01-01, 01-18 and 08-02: two repeat days,
    # the last 213 days after the first, 272 days before the end of calibration.
    assert (one["frequency"], one["recency_weeks"], one["age_weeks"]) == (2, pytest.approx(213 / 7),
                                                                          pytest.approx(272 / 7))


def _event(eid: str, type_: str, identity: dict, data: dict, when: datetime, source: str = "pos/SH-001") -> dict:
    return {"specversion": "1.0", "id": eid, "source": source, "type": type_, "time": when.isoformat(),
            "data": {"identity": identity, **data}}


def _open_in_view(identity: httpx.Client, phone: str) -> list[dict]:
    r = identity.get("/v1/customers/lookup", params={"phone": phone})
    return r.json()["alerts"]["open"] if r.status_code == 200 else []


def test_alerts_reach_the_customer_view_follow_a_merge_and_fire_on_time_with_no_one_running_a_command(stack):
    identity_port, alerts_port = free_port(), free_port()
    stack.env["CRM_ALERTS_SCAN_INTERVAL_S"] = "1"
    stack.start_service("identity", api_port=identity_port)
    stack.start_service("alerts", api_port=alerts_port)
    now = datetime.now(UTC)
    phone, openid = "13812345679", "oX-e2e-alerts"
    with _client(identity_port, "test-operator") as identity:
        r = identity.post("/v1/events", json=[
            _event("buy-1", "crm.purchase", {"phone": phone}, {"order_id": "buy-1", "amount": "268.00",
                                                                "store_id": "SH-002"}, now - timedelta(days=20)),
            _event("cx-1", "crm.complaint", {"phone": phone}, {"text": "rude staff", "store_id": "SH-002"},
                   now - timedelta(minutes=30)),
            # A WeChat follower with no phone yet complains too: a customer of its own for now.
            _event("cx-2", "crm.complaint", {"wechat_openid": openid}, {"text": "late delivery"},
                   now - timedelta(minutes=20), source="wechat/oa"),
        ])
        assert r.status_code == 202, r.text
        opened = wait_for(lambda: _open_in_view(identity, phone), timeout=120, what="the alert in the customer view")
        assert [(a["type"], a["severity"], a["store_id"]) for a in opened] == [("complaint", "red", "SH-002")]
        # The follower binds the phone: identity merges the two, and the follower's alert follows the survivor.
        r = identity.post("/v1/events", json=[_event("bind-1", "crm.follow", {"wechat_openid": openid,
                                                                             "phone": phone}, {},
                                                     now - timedelta(minutes=10), source="wechat/oa")])
        assert r.status_code == 202, r.text
        survivor = identity.get("/v1/customers/lookup", params={"phone": phone}).json()["customer_id"]
        folded = wait_for(lambda: [a for a in _open_in_view(identity, phone) if a["repeats"] == 1], timeout=120,
                          what="the follower's complaint folded into the survivor's alert")
        assert [(a["type"], a["alert_id"]) for a in folded] == [("complaint", opened[0]["alert_id"])]
        assert identity.get(f"/v1/customers/{survivor}").json()["merged_from"] != []
    with _client(alerts_port) as alerts:
        listed = alerts.get("/v1/alerts", params={"customer_id": survivor, "status": "open"}).json()
        assert [(a["type"], a["repeats"], a["store_id"]) for a in listed["items"]] == [("complaint", 1, "SH-002")]

        # Loyalty announces points that expire in 30 days and 20 seconds: the alert is due in 20 seconds,
        # and the scheduler inside the service raises it then, with nobody calling the scan route.
        expires = datetime.now(UTC) + timedelta(days=30, seconds=20)
        producer = KafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
        producer.send(topics.LOYALTY_EVENTS, encode(PointsExpiryAnnounced(
            announcement_id="an-e2e", customer_id=survivor, points=500, expires_at=expires, balance=800,
            at=datetime.now(UTC))), key=survivor.encode())
        producer.flush()
        producer.close()

        def expiring():
            r = alerts.get("/v1/alerts", params={"customer_id": survivor, "type": "points_expiring"})
            return r.json()["items"]

        store = _alerts_store(stack)
        wait_for(lambda: store.db.conn().execute("SELECT COUNT(*) FROM expiries").fetchone()[0] == 1, timeout=60,
                 what="the announcement consumed")
        # Read first, then look at the clock: a read still before the due moment saw nothing raised on consumption
        # (looking first, a read that started a moment before it was due could find the scheduler's alert).
        before_due = expiring()
        if datetime.now(UTC) < expires - timedelta(days=30):
            assert before_due == []
        [alert] = wait_for(expiring, timeout=120, what="the scheduler raising the expiry alert")
        assert alert["detail"]["points"] == 500 and alert["status"] == "open"
        assert datetime.fromisoformat(alert["opened_at"]) >= expires - timedelta(days=30)
        assert date.fromisoformat(alert["detail"]["expires_at"][:10]) == expires.date()
