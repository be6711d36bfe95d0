"""The event mix and the ``--workers`` option of ``crm bench platform``."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import typer

from crm.bench.channel_mix import base_events, mixed_events
from crm.bench.whole_platform import parse_workers
from services.identity.domain.cleaning import Cleaning, prepare


def test_the_mix_holds_every_kind_over_the_customer_base_each_event_valid_and_unique():
    events = [json.loads(e) for e in mixed_events(3000, customers=200, tag="t", seed=1)]
    assert len({e["id"] for e in events}) == 3000
    kinds = Counter(e["type"] for e in events)
    assert set(kinds) == {"crm.purchase", "crm.refund", "crm.profile", "crm.page_view", "crm.follow", "crm.survey"}
    assert {e["source"].split("/")[0] for e in events} == {"pos", "web", "wechat"}
    assert len({e["data"]["identity"]["phone"] for e in events}) > 150  # spread over the 200 customers
    cleaning = Cleaning()
    assert all(prepare(e, cleaning).idents for e in events)
    assert len({json.loads(e)["data"]["identity"]["phone"] for e in base_events(500)}) == 500


def test_workers_default_to_crm_up_and_take_per_service_overrides(monkeypatch):
    monkeypatch.delenv("CRM_IDENTITY_WORKERS", raising=False)
    monkeypatch.setattr("shared.settings.usable_cores", lambda: 2)
    assert parse_workers("") == {"identity": 1, "loyalty": 1, "alerts": 1, "campaigns": 1}
    monkeypatch.setattr("shared.settings.usable_cores", lambda: 4)
    assert parse_workers("") == {"identity": 2, "loyalty": 1, "alerts": 1, "campaigns": 1}
    assert parse_workers("identity=1, alerts=2") == {"identity": 1, "loyalty": 1, "alerts": 2, "campaigns": 1}
    with pytest.raises(typer.BadParameter):
        parse_workers("billing=2")
    with pytest.raises(typer.BadParameter):
        parse_workers("identity=0")
