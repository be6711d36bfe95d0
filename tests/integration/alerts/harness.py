"""An alerts service in-process against its SQLite store, with a clock the test moves, messages fed as
the agent feeds them and everything it publishes kept; its API through a test client."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from services.alerts.app import create_app
from services.alerts.config import AlertsConfig
from services.alerts.handlers import timers
from services.alerts.messages import consume
from services.alerts.store.sqlite import SqliteAlertsStore
from shared.contract import topics
from shared.contract.messages import (
    AlertChanged,
    CustomerEventResolved,
    CustomerMerged,
    ViewPartUpdated,
    decode,
    encode,
)
from shared.settings import Settings
from shared.streaming.batch import BatchOutcome, Incoming

ADMIN, OPERATOR, READER = "k-admin", "k-operator", "k-reader"


class Harness:
    """One alerts service with a movable clock."""

    def __init__(self, tmp: Path, now: datetime, **config: Any) -> None:
        self.now = now
        self.sent: list = []
        self.store = SqliteAlertsStore(tmp / "alerts.db")
        settings = Settings(_env_file=None, api_keys=f"{ADMIN}:admin,{OPERATOR}:operator,{READER}:reader")
        self.service = create_app(settings, store=self.store, publish=self.sent.extend, clock=lambda: self.now,
                                  config=AlertsConfig(_env_file=None, **config))
        self.api = TestClient(self.service.api, headers={"Authorization": f"Bearer {ADMIN}"})
        self._offset = 0

    def feed(self, *messages) -> BatchOutcome:
        """Consume messages as the agent does (one batch) and relay what they caused."""
        batch = []
        for m in messages:
            topic = topics.CUSTOMER_MERGED if isinstance(m, CustomerMerged) else (
                topics.CUSTOMER_EVENTS if isinstance(m, CustomerEventResolved) else topics.LOYALTY_EVENTS)
            self._offset += 1
            batch.append(Incoming(m if isinstance(m, bytes) else encode(m), topic, 0, self._offset))
        outcome = consume(batch, deps=self.service.deps)
        self.service.relay(outcome.outbox)
        return outcome

    def take(self) -> list:
        """What was published since the last look, decoded."""
        out = [decode(m.value) for m in self.sent]
        self.sent.clear()
        return out

    def changes(self) -> list[tuple[str, str, str]]:
        """(customer, type, status) of each AlertChanged published since the last look."""
        return [(m.customer_id, m.type, m.status) for m in self.take() if isinstance(m, AlertChanged)]

    def alerts(self, **params) -> list[dict]:
        r = self.api.get("/v1/alerts", params={"limit": 500, **params})
        assert r.status_code == 200, r.text
        return r.json()["items"]

    def open_types(self, customer_id: str) -> dict[str, dict]:
        return {a["type"]: a for a in self.alerts(customer_id=customer_id) if a["status"] != "resolved"}

    def scan(self, as_of: datetime | None = None, **params) -> dict:
        query = {"as_of": as_of.isoformat()} if as_of else {}
        r = self.api.post("/v1/alerts/scan", params={**query, **params})
        assert r.status_code == 200, r.text
        return r.json()

    def tick(self, owner: str = "worker-1") -> timers.ScanResult:
        """One tick of the scheduler, its units run one after another and their outboxes relayed."""

        async def run(work):
            unit = work()
            self.service.relay(unit.outbox)
            return unit

        return asyncio.run(timers.scheduled_scan(owner, deps=self.service.deps, run=run))

    def advance(self, **delta) -> datetime:
        self.now = self.now + timedelta(**delta)
        return self.now


def channel(customer: str, type_: str, eid: str, when: datetime, data: dict, *, record: str | None = None,
            resolved_at: datetime | None = None, source: str = "pos/SH-001") -> CustomerEventResolved:
    """A channel event as identity publishes it once resolved."""
    event = {"specversion": "1.0", "id": eid, "source": source, "type": type_, "time": when.isoformat(),
             "data": {"identity": {"member_id": f"M-{customer}"}, **data}}
    return CustomerEventResolved(customer_id=customer, record_id=record or customer, event=event,
                                 resolved_at=resolved_at or when)


def purchase(customer: str, eid: str, when: datetime, store: str = "SH-001", amount: str = "100.00", **kw):
    return channel(customer, "crm.purchase", eid, when, {"order_id": eid, "amount": amount, "store_id": store}, **kw)


def complaint(customer: str, eid: str, when: datetime, store: str | None = "SH-001", **kw):
    return channel(customer, "crm.complaint", eid, when, {"text": "cold soup", "store_id": store}, **kw)


def parts(messages: list) -> dict[str, ViewPartUpdated]:
    """The last alerts part published per customer."""
    return {m.customer_id: m for m in messages if isinstance(m, ViewPartUpdated)}
