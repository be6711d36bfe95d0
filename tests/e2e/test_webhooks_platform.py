"""Webhooks end to end: the alerts service started as a user starts it, a subscription made through its API,
loyalty and campaign messages in through Kafka, signed deliveries at a receiver on loopback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from kafka import KafkaProducer

from crm.broker import free_port
from services.alerts.store.sqlite import SqliteAlertsStore
from shared.contract import topics
from shared.contract.messages import CampaignTouched, PointsExpiryAnnounced, TierChanged, encode
from shared.storage.base import sqlite_path
from tests.conftest import wait_for
from tests.integration.webhooks.receiver import Receiver

pytestmark = [pytest.mark.broker]

SECRET = "whsec_e2e_0123456789abcdef"


def test_loyalty_and_campaign_events_reach_a_subscriber_signed(stack):
    port = free_port()
    stack.env["CRM_WEBHOOKS_POLL_S"] = "0.2"
    stack.env["CRM_WEBHOOKS_BLOCK_PRIVATE"] = "false"  # the receiver listens on loopback
    stack.start_service("alerts", api_port=port)
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": "Bearer test-admin"},
                       timeout=30)
    with Receiver(secret=SECRET) as rx:
        r = api.post("/v1/webhooks", json={"url": rx.url, "secret": SECRET,
                                           "event_types": ["points.expiring", "campaign.touch"]})
        assert r.status_code == 201, r.text
        wid = r.json()["webhook_id"]
        now = datetime.now(UTC)
        producer = KafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
        producer.send(topics.LOYALTY_EVENTS, encode(PointsExpiryAnnounced(
            announcement_id="an-wh", customer_id="c_wh", points=500, expires_at=now + timedelta(days=30),
            balance=800, at=now)), key=b"c_wh")
        producer.send(topics.LOYALTY_EVENTS, encode(TierChanged(  # not subscribed: not delivered
            change_id="tc-wh", customer_id="c_wh", previous=None, tier="B", direction="upgrade", reason="spend",
            at=now)), key=b"c_wh")
        producer.send(topics.CAMPAIGN_TOUCHES, encode(CampaignTouched(
            touch_id="t-wh", campaign_id="cmp-wh", customer_id="c_wh", channel="sms", at=now)), key=b"c_wh")
        producer.flush()
        producer.close()
        wait_for(lambda: len(rx.received) >= 2, timeout=90, interval=0.2, what="two deliveries")
        items = wait_for(lambda: _delivered(api, wid, 2), timeout=30, interval=0.2, what="both listed as delivered")
    assert all(x.verified for x in rx.received)
    assert sorted(x.json()["type"] for x in rx.received) == ["campaign.touch", "points.expiring"]
    assert len(rx.received) == 2
    assert sorted(d["event_type"] for d in items) == ["campaign.touch", "points.expiring"]
    # The alerts agent reading the same topic in the same worker still takes the announcement for itself.
    store = SqliteAlertsStore(sqlite_path(f"sqlite:///{stack.data_dir}/crm.db", "alerts"))
    wait_for(lambda: store.db.conn().execute("SELECT COUNT(*) FROM expiries").fetchone()[0] == 1, timeout=30,
             what="the alerts agent kept the expiry announcement")


def _delivered(api: httpx.Client, wid: str, n: int) -> list[dict]:
    items = api.get(f"/v1/webhooks/{wid}/deliveries", params={"status": "delivered"}).json()["items"]
    return items if len(items) >= n else []
