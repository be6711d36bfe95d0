"""On MongoDB, consuming a batch costs a fixed number of round trips, not one or more per message."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import mongomock

from services.alerts.config import AlertsConfig, RulesInForce
from services.alerts.handlers import Deps
from services.alerts.messages import consume
from services.alerts.store import mongo as store_mongo
from services.alerts.store.mongo import MongoAlertsStore
from shared.contract import topics
from shared.contract.messages import PointsExpiryAnnounced, ViewPartUpdated, encode
from shared.settings import Settings
from shared.storage.base import MongoDb
from shared.streaming.batch import Incoming
from tests.integration.alerts.harness import complaint, purchase

NOW = datetime(2026, 11, 20, 12, tzinfo=ZoneInfo("Asia/Shanghai"))
_ONE_BY_ONE = store_mongo._bulk


class _Counting(MongoDb):
    """Counts the calls made on each collection (the membership mapping is shared code, left out); a bulk write
    counts once (mongomock cannot take one, so there the store applies its operations one by one)."""

    def __init__(self, database) -> None:
        super().__init__(database)
        self.calls: Counter = Counter()

    def __getitem__(self, name: str):
        coll, calls = super().__getitem__(name), self.calls

        class Proxy:
            raw = coll

            def __getattr__(self, attr):
                if name != "memberships" and attr not in ("create_index", "create_indexes"):
                    calls[f"{name}.{attr}"] += 1
                return getattr(coll, attr)

        return Proxy()


def _calls(customers: int, monkeypatch) -> int:
    db = _Counting(mongomock.MongoClient(tz_aware=True)[f"t_{uuid.uuid4().hex[:8]}"])

    def bulk(coll, ops, *, mock):
        if ops:
            db.calls["bulk_write"] += 1
        _ONE_BY_ONE(coll.raw, ops, mock=mock)

    monkeypatch.setattr(store_mongo, "_bulk", bulk)
    deps = Deps(store=MongoAlertsStore(db), settings=Settings(_env_file=None), config=AlertsConfig(_env_file=None),
                rules=RulesInForce(), clock=lambda: NOW)
    batch = []
    for n in range(customers):
        c = f"c_{n}"
        batch += [encode(purchase(c, f"p{n}", NOW - timedelta(days=3))),
                  encode(complaint(c, f"x{n}", NOW - timedelta(hours=1))),
                  encode(PointsExpiryAnnounced(announcement_id=f"an{n}", customer_id=c, points=10,
                                               expires_at=NOW + timedelta(days=5), balance=10, at=NOW)),
                  encode(ViewPartUpdated(customer_id=c, part="loyalty", value={"points_balance": 10, "tier": "B"},
                                         version="000000000001"))]
    incoming = [Incoming(v, topics.CUSTOMER_EVENTS, 0, i) for i, v in enumerate(batch)]
    db.calls.clear()
    outcome = consume(incoming, deps=deps)
    assert (outcome.processed, outcome.dead_lettered) == (4 * customers, 0)
    assert len(deps.store.active_alerts([f"c_{n}" for n in range(customers)])) == 5 * customers
    return sum(db.calls.values())


def test_a_batch_costs_the_same_round_trips_for_10_customers_as_for_40(monkeypatch):
    small, large = _calls(10, monkeypatch), _calls(40, monkeypatch)
    assert small == large, (small, large)
    assert large < 60
