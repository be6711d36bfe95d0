"""What the flow tests share: channel events as the channels send them, the services' HTTP APIs, and a
snapshot of every figure the platform shows, to prove duplicates and replays change none."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from services.alerts.config import AlertsConfig
from services.campaigns.config import CampaignsSettings
from services.identity import messages as identity_messages
from services.identity.app import create_app as identity_app
from services.loyalty.config import LoyaltySettings
from shared.settings import Settings
from shared.streaming.batch import Incoming
from shared.streaming.kafka import ensure_topics
from tests.integration.platform_in_process import Platform

ADMIN, OPERATOR, READER = "flows-admin", "flows-operator", "flows-reader"
SHANGHAI = ZoneInfo("Asia/Shanghai")


@contextmanager
def identity_alone(settings: Settings, key: str, *, accept=(202,)) -> Iterator[tuple[Any, TestClient, Any]]:
    """Identity in process without a broker: its app, an HTTP client, and ``ingest(*events)``, which posts
    channel events as ``key`` (answered with a status in ``accept``) and consumes what that published."""
    sent: list = []
    app = identity_app(settings, publish=sent.extend)
    http = TestClient(app.api)

    def ingest(*events: dict[str, Any]) -> None:
        first = len(sent)
        r = http.post("/v1/events", headers={"Authorization": f"Bearer {key}"}, json=list(events))
        assert r.status_code in accept, r.text
        identity_messages.consume([Incoming(o.value, o.topic, 0, i, list(o.headers), o.key)
                                   for i, o in enumerate(sent[first:]) if ".channel." in o.topic], deps=app.deps)

    try:
        yield app, http, ingest
    finally:
        http.close()


def at(text: str) -> datetime:
    """A moment in Shanghai time (``2026-11-02T10:00``)."""
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def new_phone() -> str:
    """A phone number no other test uses, in a notation a till might send."""
    digits = f"{random.randrange(10**8):08d}"
    return f"139 {digits[:4]} {digits[4:]}"


_LETTERS = str.maketrans("0123456789", "ghijklmnop")


def new_id(prefix: str) -> str:
    """A unique id of letters only: a random run of digits in an id could be read as a phone and masked."""
    return f"{prefix}-{uuid.uuid4().hex[:10].translate(_LETTERS)}"


def event(type_: str, when: datetime, identity: dict[str, str], *, source: str = "pos/SH-001",
          eid: str | None = None, **data: Any) -> dict[str, Any]:
    """A CloudEvent as a channel publishes it."""
    return {"specversion": "1.0", "id": eid or new_id(type_.removeprefix("crm.")), "source": source, "type": type_,
            "time": when.isoformat(), "datacontenttype": "application/json", "data": {"identity": identity, **data}}


def purchase(identity: dict[str, str], when: datetime, amount: str, *, store: str = "SH-001",
             source: str | None = None, order_id: str | None = None) -> dict[str, Any]:
    """A purchase at a store's till (or another channel's ``source``)."""
    order = order_id or new_id("T")
    return event("crm.purchase", when, identity, source=source or f"pos/{store}", eid=order, order_id=order,
                 amount=amount, currency="CNY", store_id=store,
                 items=[{"sku": "SK-01", "category": "skincare", "quantity": 1, "unit_price": amount}])


class Flow:
    """The platform and its APIs, as an ops user and the channels use them."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.identity = platform["identity"].api(OPERATOR)
        self.loyalty = platform["loyalty"].api(ADMIN)
        self.alerts_api = platform["alerts"].api(OPERATOR)
        self.campaigns = platform["campaigns"].api(OPERATOR)

    def set_clocks(self, moment: datetime) -> None:
        """Loyalty's, alerts' and campaigns' clocks read ``moment`` (identity keeps the real time)."""
        self.platform.set_clocks(moment)

    def ingest(self, *events: dict[str, Any]) -> None:
        """Post channel events to identity's ingestion route and let every service handle what follows."""
        r = self.identity.post("/v1/events", json=list(events))
        assert r.status_code == 202, r.text
        self.platform.settle()

    def customer_id(self, **identifier: str) -> str:
        """The customer an identifier belongs to now."""
        r = self.identity.get("/v1/customers/lookup", params=identifier)
        assert r.status_code == 200, r.text
        return r.json()["customer_id"]

    def view(self, customer_id: str) -> dict[str, Any]:
        """Identity's single customer view."""
        r = self.identity.get(f"/v1/customers/{customer_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def account(self, customer_id: str) -> dict[str, Any]:
        """Loyalty's account."""
        r = self.loyalty.get(f"/v1/loyalty/accounts/{customer_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def alerts(self, customer_id: str, **filters: str) -> list[dict[str, Any]]:
        """The alerts service's alerts of a customer."""
        r = self.alerts_api.get("/v1/alerts", params={"customer_id": customer_id, "limit": 500, **filters})
        assert r.status_code == 200, r.text
        return r.json()["items"]

    def open_alerts(self, customer_id: str) -> dict[str, dict[str, Any]]:
        """A customer's active alerts by type."""
        return {a["type"]: a for a in self.alerts(customer_id) if a["status"] != "resolved"}

    def snapshot(self, customers: list[str], campaigns: list[str] = ()) -> dict[str, Any]:
        """Every figure the platform shows for these customers and campaigns, from every service's API."""
        out: dict[str, Any] = {}
        for c in customers:
            view = self.view(c)
            ledger = self.loyalty.get(f"/v1/loyalty/accounts/{c}/ledger", params={"limit": 500})
            out[c] = {
                "view": view,
                "account": {k: v for k, v in self.account(c).items() if k != "updated_at"},
                "ledger": ledger.json() if ledger.status_code == 200 else ledger.status_code,
                "alerts": sorted(({k: a[k] for k in ("alert_id", "customer_id", "type", "severity", "status",
                                                      "store_id", "repeats", "detail", "resolution")}
                                  for a in self.alerts(c)), key=lambda a: a["alert_id"]),
            }
        for cid in campaigns:
            r = self.campaigns.get(f"/v1/campaigns/{cid}/results")
            assert r.status_code == 200, r.text
            out[cid] = r.json()
        return out

    def assert_replays_change_nothing(self, customers: list[str], campaigns: list[str] = ()) -> None:
        """Every message on every topic delivered twice more (as duplicates, then as a replay of each
        service's whole input) leaves every figure where it was."""
        from shared.contract import topics

        before = self.snapshot(customers, campaigns)
        assert self.platform.republish(topics.ALL_TOPICS) > 0
        self.platform.settle()
        assert self.snapshot(customers, campaigns) == before, "duplicates changed a figure"
        self.platform.replay()
        assert self.snapshot(customers, campaigns) == before, "a replay changed a figure"


@contextmanager
def running_flow(settings: Settings) -> Iterator[Flow]:
    """The four services in this process on ``settings``, with their default rules, closed afterwards."""
    ensure_topics(settings)
    platform = Platform(settings, options={
        "loyalty": {"config": LoyaltySettings(_env_file=None)},
        "alerts": {"config": AlertsConfig(_env_file=None)},
        "campaigns": {"config": CampaignsSettings(_env_file=None)},
    })
    try:
        yield Flow(platform)
    finally:
        platform.close()
