"""The alerts service hosting webhooks, in-process over its SQLite store: subscriptions through its API,
messages recorded as its agent records them (in its own batches), the dispatcher in its own thread."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from services.alerts.app import create_app
from services.alerts.messages import consume
from services.alerts.store.sqlite import SqliteAlertsStore
from shared.contract import topics
from shared.contract.messages import (
    AlertChanged,
    CampaignTouched,
    CustomerErased,
    PointsExpiryAnnounced,
    TierChanged,
    encode,
)
from shared.settings import Settings
from shared.streaming.batch import BatchOutcome, Incoming
from shared.webhooks.config import WebhooksConfig

ADMIN, READER = "k-admin", "k-reader"
AT = datetime(2026, 11, 20, 2, 15, tzinfo=UTC)

_TOPIC = {AlertChanged: topics.ALERTS_EVENTS, CampaignTouched: topics.CAMPAIGN_TOUCHES,
          PointsExpiryAnnounced: topics.LOYALTY_EVENTS, TierChanged: topics.LOYALTY_EVENTS}


class Host:
    """One alerts service with webhooks; ``start()`` runs its dispatcher."""

    def __init__(self, path: Path, *, store: Any = None, **config: Any) -> None:
        self.store = store if store is not None else SqliteAlertsStore(path)
        settings = Settings(_env_file=None, api_keys=f"{ADMIN}:admin,{READER}:reader")
        # The tests' receivers listen on loopback, which the default (block_private) refuses.
        cfg = {"backoff_s": 0.05, "timeout_s": 2.0, "poll_s": 0.05, "max_attempts": 4, "block_private": False,
               **config}
        self.sent: list = []  # what the service published (audit entries)
        self.service = create_app(settings, store=self.store, publish=self.sent.extend,
                                  webhooks=WebhooksConfig(_env_file=None, **cfg))
        self.hooks = self.service.deps.webhooks
        self.api = TestClient(self.service.api, headers={"Authorization": f"Bearer {ADMIN}"})
        self._offset = 0

    def start(self) -> Host:
        self.hooks.dispatcher.start()
        return self

    def stop(self) -> None:
        self.hooks.dispatcher.stop()

    def subscribe(self, url: str, *types: str, secret: str = "s3cret-s3cret-s3cret") -> str:
        r = self.api.post("/v1/webhooks", json={"url": url, "event_types": list(types), "secret": secret})
        assert r.status_code == 201, r.text
        return r.json()["webhook_id"]

    def feed(self, *messages) -> BatchOutcome:
        """Consume messages as the alerts agent does (one batch)."""
        batch = []
        for m in messages:
            self._offset += 1
            batch.append(Incoming(encode(m), _TOPIC[type(m)], 0, self._offset))
        return consume(batch, deps=self.service.deps)

    def erase(self, customer_id: str, *records: str) -> BatchOutcome:
        """Erase a customer as alerts' own agent takes identity's erasure (one batch), as in issue 12."""
        self._offset += 1
        m = CustomerErased(erasure_id=f"er_{customer_id}", customer_id=customer_id,
                           records=[customer_id, *records], at=AT)
        return consume([Incoming(encode(m), topics.CUSTOMER_EVENTS, 1, self._offset)], deps=self.service.deps)

    def deliveries(self, webhook_id: str, **params) -> list[dict]:
        r = self.api.get(f"/v1/webhooks/{webhook_id}/deliveries", params={"limit": 500, **params})
        assert r.status_code == 200, r.text
        return r.json()["items"]


def touch(n: int, **fields) -> CampaignTouched:
    """A campaign touch."""
    return CampaignTouched(**{"touch_id": f"t-{n}", "campaign_id": "cmp-1", "customer_id": f"c_{n}",
                              "channel": "sms", "offer": {"code": "SPRING"}, "at": AT, **fields})


def alert(alert_id: str, *, status: str = "open", severity: str = "yellow", at: datetime = AT) -> AlertChanged:
    """An alert change."""
    return AlertChanged(alert_id=alert_id, customer_id="c_1", type="churn", severity=severity, status=status,
                        store_id="SH-001", at=at)
