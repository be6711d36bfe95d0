"""The event mix and the ``--workers`` option of ``crm bench platform``."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import typer

from crm.bench.channel_mix import base_events, mixed_events
from crm.bench.whole_platform import Batches, batches, parse_workers
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


class _Platform:
    """Workers whose /metrics pages are given in turn (an empty page: the worker did not answer)."""

    data_dir = "/tmp/bench"

    def __init__(self, pages: dict[str, list[dict[str, float]]]) -> None:
        self.pages = pages
        self.procs = dict.fromkeys(pages)

    def metrics(self, worker: str) -> dict[str, float]:
        return self.pages[worker].pop(0)


def _page(batches: int, seconds: float, **consumed: float) -> dict[str, float]:
    page = {"crm_handler_batch_seconds_count": batches, "crm_handler_batch_seconds_sum": seconds}
    for topic, n in consumed.items():
        page[f'crm_events_consumed_total{{topic="{topic}"}}'] = n
        page[f'crm_events_consumed_created{{topic="{topic}"}}'] = 1.7e9  # a timestamp, not a count
    return page


def test_batches_sum_a_services_workers_and_every_topic_they_consume_and_wait_for_a_worker_to_answer():
    platform = _Platform({
        "identity": [_page(4, 0.5, pos=100, web=20)],
        "identity-1": [{}, {}, _page(6, 1.0, wechat=30, view=5)],  # answered on the third ask
        "loyalty": [_page(2, 0.25, customer=150)],
        "alerts": [_page(0, 0.0)],
        "campaigns": [_page(3, 0.5, customer=150)],
    })
    got = batches(platform)
    assert got == {"identity": Batches(10, 155, 1.5), "loyalty": Batches(2, 150, 0.25),
                   "alerts": Batches(0, 0, 0.0), "campaigns": Batches(3, 150, 0.5)}
    assert (got["identity"] - Batches(4, 55, 0.5)).text() == "6 (17, 166.7 ms)"
    assert Batches(0, 0, 0.0).text() == "0 (0, 0.0 ms)"


def test_a_worker_that_never_answers_stops_the_count_naming_it(monkeypatch):
    monkeypatch.setattr("crm.bench.whole_platform.POLL_S", 0.001)
    platform = _Platform({"identity": [{}] * 10_000, "loyalty": [], "alerts": [], "campaigns": []})
    from crm.bench import whole_platform

    with pytest.raises(RuntimeError, match="identity gave no metrics"):
        whole_platform._answered_metrics(platform, "identity", timeout_s=0.05)
