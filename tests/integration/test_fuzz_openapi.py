"""Schemathesis over each service's OpenAPI document, in process: no request a client can build from the
document gets a 5xx, every status answered is documented, every answer matches its documented schema
and content type.

Each service runs on a fresh SQLite store with a little data (a customer, a reward, an alert, a campaign),
and the ids of that data are among the values tried for path ids, so routes are fuzzed past their 404.
Two runs per service: one with a fixed seed (the same requests every time) and one with a random seed
(new requests every time, its seed printed when it fails). Reproduce a run with ``CRM_FUZZ_SEED=<seed>``;
run only the fuzzing with ``pytest tests/integration/test_fuzz_openapi.py``.
"""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient

from shared.settings import Settings

ADMIN = "fuzz-admin"
HEADERS = {"Authorization": f"Bearer {ADMIN}"}
FIXED_SEED = 20261204
RANDOM_SEED = int(os.environ.get("CRM_FUZZ_SEED") or random.SystemRandom().randrange(2**31))
# Examples per operation and generation mode (positive, negative) in the fuzzing phase; the coverage
# phase adds its edge cases (bounds, wrong types, missing parameters) on top.
MAX_EXAMPLES = int(os.environ.get("CRM_FUZZ_EXAMPLES", "15"))
CHECKS = ["not_a_server_error", "status_code_conformance", "response_schema_conformance",
          "content_type_conformance", "response_headers_conformance"]
NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)


def _settings(tmp: Path) -> Settings:
    return Settings(_env_file=None, data_dir=str(tmp), api_keys=f"{ADMIN}:admin", timezone="Asia/Shanghai",
                    pseudonym_secret="fuzz-secret-of-sufficient-length", topic_prefix="", store_timezones="",
                    blocked_phones="")


def _identity(tmp: Path) -> tuple[object, dict[str, list[str]]]:
    from services.identity import messages
    from services.identity.app import create_app
    from services.identity.store.sqlite import SqliteIdentityStore
    from shared.streaming.batch import Incoming
    from tests.unit.identity.support import purchase

    sent: list = []
    # No other service runs here: the export's peers answer an empty part (a peer that does not answer is a
    # 503 by design, tested in tests/integration/flows/test_erasure_flow.py).
    service = create_app(_settings(tmp), store=SqliteIdentityStore(tmp / "identity.db"), publish=sent.extend,
                         clock=lambda: NOW, peer_get=lambda name, path, headers: httpx.Response(200, json={}))
    http = TestClient(service.api, headers=HEADERS)
    r = http.post("/v1/events", json=[purchase("f1", {"phone": "13800138000", "member_id": "M-1"}, "268.00")])
    assert r.status_code == 202, r.text
    batch = [Incoming(o.value, o.topic, 0, n, list(o.headers), o.key) for n, o in enumerate(sent)]
    service.relay(messages.consume(batch, deps=service.deps).outbox)
    customer = http.get("/v1/customers/lookup", params={"phone": "13800138000"}).json()["customer_id"]
    return service, {"customer_id": [customer]}


def _loyalty(tmp: Path) -> tuple[object, dict[str, list[str]]]:
    from services.loyalty import messages
    from services.loyalty.app import create_app
    from services.loyalty.config import LoyaltySettings
    from services.loyalty.store.sqlite import SqliteLoyaltyStore
    from tests.integration.loyalty.conftest import purchase_msg

    service = create_app(_settings(tmp), store=SqliteLoyaltyStore(tmp / "loyalty.db"), publish=lambda _: None,
                         clock=lambda: NOW, config=LoyaltySettings(_env_file=None))
    messages.consume([purchase_msg("f1", "500.00", "2026-11-01 10:00", record="c_fuzz")], deps=service.deps)
    http = TestClient(service.api, headers=HEADERS)
    reward = http.post("/v1/loyalty/rewards", json={"name": "Scarf", "points_cost": 100, "stock": 5})
    assert reward.status_code == 201, reward.text
    redemption = http.post("/v1/loyalty/accounts/c_fuzz/redemptions", json={"reward_id": reward.json()["reward_id"]})
    assert redemption.status_code == 201, redemption.text
    return service, {"customer_id": ["c_fuzz"], "reward_id": [reward.json()["reward_id"]],
                     "redemption_id": [redemption.json()["redemption_id"]], "month": ["2026-11"]}


def _alerts(tmp: Path) -> tuple[object, dict[str, list[str]]]:
    from services.alerts.app import create_app
    from services.alerts.config import AlertsConfig
    from services.alerts.messages import consume
    from services.alerts.store.sqlite import SqliteAlertsStore
    from shared.contract import topics
    from shared.contract.messages import encode
    from shared.streaming.batch import Incoming
    from tests.integration.alerts.harness import complaint

    service = create_app(_settings(tmp), store=SqliteAlertsStore(tmp / "alerts.db"), publish=lambda _: None,
                         clock=lambda: NOW, config=AlertsConfig(_env_file=None))
    message = complaint("c_fuzz", "x1", NOW - timedelta(hours=2))
    outcome = consume([Incoming(encode(message), topics.CUSTOMER_EVENTS, 0, 1)], deps=service.deps)
    service.relay(outcome.outbox)
    alerts = TestClient(service.api, headers=HEADERS).get("/v1/alerts").json()["items"]
    assert alerts, "the seeded complaint raised no alert"
    return service, {"customer_id": ["c_fuzz"], "alert_id": [alerts[0]["alert_id"]]}


def _campaigns(tmp: Path) -> tuple[object, dict[str, list[str]]]:
    from services.campaigns.app import create_app
    from services.campaigns.config import CampaignsSettings
    from services.campaigns.store.sqlite import SqliteCampaignsStore

    service = create_app(_settings(tmp), store=SqliteCampaignsStore(tmp / "campaigns.db"), publish=lambda _: None,
                         clock=lambda: NOW, config=CampaignsSettings(_env_file=None))
    http = TestClient(service.api, headers=HEADERS)
    body = {"name": "Spring", "objective": "promotion", "channel": "sms",
            "starts_at": (NOW + timedelta(days=1)).isoformat(), "ends_at": (NOW + timedelta(days=10)).isoformat()}
    draft = http.post("/v1/campaigns", json=body)
    assert draft.status_code == 201, draft.text
    running = http.post("/v1/campaigns", json={**body, "name": "Now", "starts_at": NOW.isoformat()})
    launched = http.post(f"/v1/campaigns/{running.json()['campaign_id']}/launch")
    assert launched.status_code == 200, launched.text
    return service, {"campaign_id": [draft.json()["campaign_id"], running.json()["campaign_id"]]}


SERVICES = {"identity": _identity, "loyalty": _loyalty, "alerts": _alerts, "campaigns": _campaigns}
RUNS = [(name, kind) for name in SERVICES for kind in ("fixed", "random")]


def _config(seed: int, known: dict[str, list[str]]) -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "seed": seed,
        "suppress-health-check": ["all"],
        "headers": HEADERS,
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "dictionaries": {name: {"values": values} for name, values in known.items()},
        # Half the tries at a path id use an id that exists.
        "parameters": {f"path.{name}": {"dictionary": name, "probability": 0.5} for name in known},
    })


def _failures(schema: schemathesis.BaseSchema) -> tuple[list[str], int]:
    """Every distinct failed check of a whole run (all phases, as ``schemathesis run`` does), and the number
    of requests sent."""
    from schemathesis import engine
    from schemathesis.engine import Status, events

    found: dict[str, str] = {}
    requests = 0
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.FatalError):
            raise event.exception
        if isinstance(event, events.NonFatalError):
            found[f"error {event.label}"] = f"{event.label}: {event.info.format()}"
        if not isinstance(event, events.ScenarioFinished):
            continue
        requests += len(event.recorder.interactions)
        for checks in event.recorder.checks.values():
            for check in checks:
                if check.status == Status.FAILURE and check.failure_info is not None:
                    failure = check.failure_info.failure
                    key = f"{event.recorder.label} {check.name} {failure.title}"
                    found.setdefault(key, f"{event.recorder.label} [{check.name}] {failure.title}: "
                                          f"{failure.message}\n    {check.failure_info.code_sample}")
    return sorted(found.values()), requests


@pytest.mark.parametrize(("service", "kind"), RUNS, ids=[f"{name}-{kind}" for name, kind in RUNS])
def test_no_request_built_from_the_document_gets_a_5xx_or_an_undocumented_answer(service, kind, tmp_path):
    seed = FIXED_SEED if kind == "fixed" else RANDOM_SEED
    app, known = SERVICES[service](tmp_path)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app.api, config=_config(seed, known))
    failures, requests = _failures(schema)
    assert requests > 0
    assert not failures, (f"{service}: {len(failures)} failures in {requests} requests with seed {seed} "
                          f"(reproduce: CRM_FUZZ_SEED={seed})\n" + "\n".join(failures))
