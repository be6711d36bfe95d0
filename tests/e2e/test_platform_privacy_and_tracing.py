"""The whole platform on the spine's scenario: four services as processes, the 1,000-person scenario in
through Kafka, a campaign launched over it. Afterwards no log line, exported span, metric label, Kafka
key or header, or dead-letter reason of any service names a phone, a birthday or a name in clear, and
``crm trace`` follows one purchase through every service."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from kafka import KafkaConsumer

from crm.broker import free_port
from crm.platform import SERVICES
from crm.replay import publish_lines
from crm.scenario import generate
from shared.contract import topics
from shared.settings import Settings
from shared.streaming.packs import carried
from tests.conftest import ROOT, wait_for
from tests.e2e.helpers import consumed, identity_store, lines_of, personal_data, send_sentinels

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ADMIN = {"Authorization": "Bearer test-admin"}


def test_no_personal_data_leaks_anywhere_and_one_purchase_is_traced_through_every_service(stack):
    scenario = generate(1000, seed=21)
    ports = {name: free_port() for name in SERVICES}
    for name in SERVICES:
        stack.start_service(name, api_port=ports[name])
    publish_lines(lines_of(scenario), Settings(_env_file=None, kafka_bootstrap=stack.bootstrap))
    store = identity_store(stack.data_dir)
    keys = send_sentinels(stack.bootstrap)
    wait_for(lambda: all(store.event_seen(s, i) for s, i in keys), timeout=300, what="identity drained")

    # Identity having resolved everything is not campaigns having every customer's facts: a launch
    # before then may find nobody.
    resolved = store.db.conn().execute("SELECT COUNT(*) FROM events").fetchone()[0]
    for name in ("loyalty", "alerts", "campaigns"):
        wait_for(lambda n=name: consumed(ports[n], topics.CUSTOMER_EVENTS) >= resolved, timeout=300,
                 what=f"{name} consumed every resolved event")

    # A campaign over everyone who may be texted: touches and bonus grants flow to loyalty.
    now = datetime.now(UTC)
    campaigns = f"http://127.0.0.1:{ports['campaigns']}/v1/campaigns"
    body = {"name": "privacy scan", "objective": "winback", "channel": "sms", "bonus_multiplier": "2.00",
            "starts_at": now.isoformat(), "ends_at": (now + timedelta(days=30)).isoformat()}
    campaign = httpx.post(campaigns, json=body, headers=ADMIN, timeout=30).json()
    launched = httpx.post(f"{campaigns}/{campaign['campaign_id']}/launch", headers=ADMIN, timeout=120)
    assert launched.status_code == 200 and launched.json()["launch"]["members"] > 0

    pattern = personal_data(scenario)
    # Every process's log lines.
    logs = stack.logs()
    assert all((stack.data_dir / f"{name}.log").stat().st_size > 0 for name in SERVICES)
    assert not pattern.search(logs), pattern.search(logs).group(0)[:3] + "…"
    # Every exported span (attributes, names, links) of every service.
    spans = (stack.data_dir / "traces.jsonl").read_text()
    assert {f'"service":"crm-{name}"' in spans for name in SERVICES} == {True}
    assert not pattern.search(spans)
    # Every metric label every service exposes.
    for name in SERVICES:
        assert not pattern.search(httpx.get(f"http://127.0.0.1:{ports[name]}/metrics", timeout=5).text), name
    # Dead-letter reasons and origins (the payload is kept for redrive, as the source topic keeps it).
    letters = httpx.get(f"http://127.0.0.1:{ports['identity']}/v1/deadletters", params={"limit": 500},
                        headers=ADMIN, timeout=30).json()
    assert letters["total"] == 50
    assert not pattern.search(json.dumps([{k: v for k, v in d.items() if k != "payload"} for d in letters["items"]]))
    # Keys and headers of everything the services published.
    consumer = KafkaConsumer(topics.CUSTOMER_EVENTS, topics.CUSTOMER_MERGED, topics.DEADLETTER,
                             topics.LOYALTY_EVENTS, topics.ALERTS_EVENTS, topics.CAMPAIGN_EVENTS,
                             topics.CAMPAIGN_TOUCHES, bootstrap_servers=stack.bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000, group_id=None)
    seen: dict[str, int] = {}
    for msg in carried(consumer):  # each message of a pack with its own key and headers
        seen[msg.topic] = seen.get(msg.topic, 0) + 1
        blob = (msg.key or b"").decode("latin-1") + "".join(k + v.decode("latin-1") for k, v in msg.headers)
        assert not pattern.search(blob), f"personal data in a key or header on {msg.topic}"
    consumer.close()
    assert all(seen.get(t, 0) > 0 for t in (topics.CUSTOMER_EVENTS, topics.LOYALTY_EVENTS, topics.ALERTS_EVENTS,
                                             topics.CAMPAIGN_EVENTS, topics.CAMPAIGN_TOUCHES)), seen

    # One purchase, followed through every service with `crm trace`.
    purchase = next(e for e in scenario.events if isinstance(e, dict) and e["type"] == "crm.purchase")

    def traced() -> str | None:
        # Spans reach the file in batches every few seconds.
        printed = subprocess.run([sys.executable, "-m", "crm.cli", "trace", purchase["id"]], env=stack.env,
                                 cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert printed.returncode == 0, printed.stderr
        lines = printed.stdout.splitlines()
        every = all(any(f"[{n}]" in line and " process " in line for line in lines) for n in SERVICES)
        return printed.stdout if every else None

    output = wait_for(traced, timeout=60, interval=1, what="the purchase's spans from every service")
    assert output.startswith("trace ")
    assert "↪ sqlite.transaction" in output
    assert not pattern.search(output)


def test_each_ingestion_request_on_a_kept_alive_connection_starts_its_own_trace(stack):
    # A body over uvicorn's 64 KiB read limit pauses the connection; the next request on it used to start
    # inside the previous request's context, so every later batch joined the first one's trace.
    port = free_port()
    stack.start_service("identity", api_port=port)
    scenario = generate(400, seed=5)
    events = [e for e in scenario.events if isinstance(e, dict)]
    batches = [events[i:i + 300] for i in range(0, 900, 300)]
    assert all(len(json.dumps(b)) > 65_536 for b in batches)
    with httpx.Client(headers={"Authorization": "Bearer test-operator"}, timeout=30) as client:
        for batch in batches:
            assert client.post(f"http://127.0.0.1:{port}/v1/events", json=batch).status_code in (202, 207)

    def server_spans() -> list[dict] | None:
        path = stack.data_dir / "traces.jsonl"
        spans = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        found = [s for s in spans if s["name"] == "POST /v1/events"]
        return found if len(found) == len(batches) else None

    found = wait_for(server_spans, timeout=60, interval=0.5, what="a span per request")
    assert [(s["kind"], s["parent_id"]) for s in found] == [("SERVER", None)] * len(batches)
    assert len({s["trace_id"] for s in found}) == len(batches)
