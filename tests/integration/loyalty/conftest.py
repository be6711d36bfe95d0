"""Loyalty's stores (SQLite, mongomock, a real MongoDB when CRM_TEST_MONGODB_URL is set) and helpers
to feed the handlers the messages identity and campaigns publish."""

from __future__ import annotations

import itertools
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from services.loyalty.app import create_app
from services.loyalty.config import LoyaltySettings, RulesSource
from services.loyalty.handlers import Deps
from shared.contract.messages import CampaignBonusGranted, CustomerEventResolved, CustomerMerged, encode
from shared.settings import Settings
from shared.streaming.batch import Incoming
from tests.integration.shared.backends import BACKENDS, mongo_db, sqlite_file

SH = ZoneInfo("Asia/Shanghai")
_offsets = itertools.count()


def _sqlite(tmp_path):
    from services.loyalty.store.sqlite import SqliteLoyaltyStore

    return SqliteLoyaltyStore(sqlite_file(tmp_path, "loyalty"))


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    """Each store adapter in turn."""
    if request.param == "sqlite":
        yield _sqlite(tmp_path)
        return
    from services.loyalty.store.mongo import MongoLoyaltyStore

    with mongo_db(request.param) as db:
        yield MongoLoyaltyStore(db)


@pytest.fixture
def sqlite_store(tmp_path):
    return _sqlite(tmp_path)


class Clock:
    """A clock the test moves."""

    def __init__(self, start: str) -> None:
        self.now = at(start)

    def __call__(self) -> datetime:
        return self.now

    def set(self, text: str) -> None:
        self.now = at(text)


def at(text: str) -> datetime:
    """A Shanghai moment from ``2026-03-01 10:00``, or any ISO moment with its zone."""
    if "+" in text[10:] or text.endswith("Z"):
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    return datetime.fromisoformat(text).replace(tzinfo=SH)


def deps_for(store, clock, *, rules_file: str | None = None, **config) -> Deps:
    settings = Settings(_env_file=None, timezone="Asia/Shanghai")
    cfg = LoyaltySettings(_env_file=None, rules_file=rules_file, **config)
    return Deps(store=store, settings=settings, config=cfg, rules=RulesSource(cfg, SH), clock=clock, zone=SH)


def incoming(message, topic: str = "crm.customer.events") -> Incoming:
    return Incoming(encode(message), topic, 0, next(_offsets), [], message.customer_id.encode()
                    if hasattr(message, "customer_id") else None)


def purchase_msg(eid: str, amount: str, when: str, *, record: str = "c_a", customer: str | None = None,
                 order: str | None = None, category: str | None = None, store_id: str = "SH-001") -> Incoming:
    items = [{"sku": "SK-1", "category": category, "quantity": 1, "unit_price": amount}] if category else []
    event = {"specversion": "1.0", "id": eid, "source": f"pos/{store_id}", "type": "crm.purchase",
             "time": at(when).isoformat(),
             "data": {"identity": {"member_id": record}, "order_id": order or eid, "amount": amount,
                      "currency": "CNY", "store_id": store_id, "items": items}}
    return incoming(CustomerEventResolved(customer_id=customer or record, record_id=record, event=event,
                                          resolved_at=at(when)))


def refund_msg(eid: str, order: str, amount: str, when: str, *, record: str = "c_a",
               customer: str | None = None) -> Incoming:
    event = {"specversion": "1.0", "id": eid, "source": "pos/SH-001", "type": "crm.refund",
             "time": at(when).isoformat(),
             "data": {"identity": {"member_id": record}, "order_id": order, "amount": amount}}
    return incoming(CustomerEventResolved(customer_id=customer or record, record_id=record, event=event,
                                          resolved_at=at(when)))


def merge_msg(survivor: str, merged: str, records: list[str], when: str, *, undo: bool = False,
              merge_id: str = "m_1") -> Incoming:
    return incoming(CustomerMerged(kind="customer.unmerged" if undo else "customer.merged", merge_id=merge_id,
                                   survivor_id=survivor, merged_id=merged, records=records, at=at(when)),
                    "crm.customer.merged")


def bonus_msg(grant: str, campaign: str, customer: str, multiplier: str, starts: str, ends: str, *,
              active: bool = True, when: str | None = None) -> Incoming:
    return incoming(CampaignBonusGranted(grant_id=grant, campaign_id=campaign, customer_id=customer,
                                         multiplier=multiplier, starts_at=at(starts), ends_at=at(ends),
                                         active=active, at=at(when or starts)), "crm.campaigns.events")


@pytest.fixture
def loyalty(store):
    """The loyalty API over each store, with a settable clock and what it published kept."""
    clock = Clock("2026-11-01 12:00")
    published: list = []
    settings = Settings(_env_file=None, api_keys="k-admin:admin,k-op:operator,k-read:reader",
                        timezone="Asia/Shanghai")
    service = create_app(settings, store=store, publish=published.extend, clock=clock,
                         config=LoyaltySettings(_env_file=None))
    client = TestClient(service.api)
    client.published = published
    client.service = service
    client.clock = clock
    return client
