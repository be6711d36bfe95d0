"""The spine end to end: services started as a user starts them, events in through Kafka and HTTP,
results read through the HTTP API and compared with the generated scenario's truth."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer

from crm.broker import free_port
from crm.replay import publish_lines
from crm.scenario import generate
from shared.contract import topics
from shared.settings import Settings
from shared.streaming.packs import carried
from tests.conftest import ROOT, wait_for, wait_http
from tests.e2e.helpers import (
    identity_store,
    lines_of,
    mismatches,
    send_sentinels,
    unique_valid_keys,
)

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def _client(port: int, key: str = "test-admin") -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"},
                        timeout=30)


def _drain(stack, store) -> None:
    keys = send_sentinels(stack.bootstrap)
    wait_for(lambda: all(store.event_seen(s, i) for s, i in keys), timeout=180, what="sentinels processed")


def test_scenario_through_kafka_is_exact_replay_changes_nothing_and_no_phone_leaks(stack):
    scenario = generate(1000, seed=11)
    assert len(scenario.events) >= 5000 and scenario.malformed == 50 and scenario.duplicates > 0
    port = free_port()
    stack.start_service("identity", api_port=port)
    settings = Settings(_env_file=None, kafka_bootstrap=stack.bootstrap)
    store = identity_store(stack.data_dir)
    publish_lines(lines_of(scenario), settings)
    _drain(stack, store)
    with _client(port) as client:
        summary = client.get("/v1/identity/summary").json()
        # 1,000 people plus the sentinel customer.
        assert summary["customers"] == 1001
        assert summary["dead_letters"] == 50
        assert mismatches(client, scenario) == []
        assert all(store.event_seen(s, i) for s, i in unique_valid_keys(scenario))
        before = {p.digits: client.get("/v1/customers/lookup", params={"phone": p.digits}).json()
                  for p in scenario.people[:50]}

        publish_lines(lines_of(scenario), settings)  # everything a second time
        _drain(stack, store)
        assert client.get("/v1/identity/summary").json() == summary
        assert mismatches(client, scenario) == []
        after = {p.digits: client.get("/v1/customers/lookup", params={"phone": p.digits}).json()
                 for p in scenario.people[:50]}
        strip = lambda v: {k: x for k, x in v.items() if k != "updated_at"}  # noqa: E731
        assert {k: strip(v) for k, v in after.items()} == {k: strip(v) for k, v in before.items()}
        letters = client.get("/v1/deadletters", params={"limit": 500}).json()
    assert letters["total"] == 50
    _assert_no_phone_in_clear(stack, scenario, letters)


def _phone_patterns(scenario) -> re.Pattern:
    forms = set()
    for p in scenario.people:
        d = p.digits
        forms |= {d, f"{d[:3]}-{d[3:7]}-{d[7:]}", f"{d[:3]} {d[3:7]} {d[7:]}"}
    return re.compile("|".join(re.escape(f) for f in forms))


def _assert_no_phone_in_clear(stack, scenario, letters) -> None:
    pattern = _phone_patterns(scenario)
    # Logs of every process and every exported span.
    assert not pattern.search(stack.logs())
    traces = stack.data_dir / "traces.jsonl"
    if traces.exists():
        assert not pattern.search(traces.read_text())
    # Dead-letter reasons (the payload is kept for redrive, as the source topic keeps it).
    assert not pattern.search(json.dumps([{k: v for k, v in d.items() if k != "payload"} for d in letters["items"]]))
    # Kafka keys and headers on everything the platform published.
    consumer = KafkaConsumer(topics.CUSTOMER_EVENTS, topics.CUSTOMER_MERGED, topics.DEADLETTER,
                             bootstrap_servers=stack.bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000, group_id=None)
    seen = 0
    for msg in carried(consumer):  # each message of a pack with its own key and headers
        seen += 1
        blob = (msg.key or b"").decode("latin-1") + "".join(k + v.decode("latin-1") for k, v in msg.headers)
        assert not pattern.search(blob), f"phone in key/headers of {msg.topic}"
    consumer.close()
    assert seen > 1000


def test_http_ingestion_gives_the_same_exact_result(stack):
    scenario = generate(1000, seed=12)
    port = free_port()
    stack.start_service("identity", api_port=port)
    store = identity_store(stack.data_dir)
    good = [e for e in scenario.events if isinstance(e, dict)]
    broken = [e for e in scenario.events if isinstance(e, str)]
    rejected = 0
    with _client(port, "test-operator") as client:
        for start in range(0, len(good), 1000):
            r = client.post("/v1/events", json=good[start:start + 1000])
            assert r.status_code in (202, 207)
            rejected += r.json()["rejected"]
        for text in broken:
            r = client.post("/v1/events", content=text, headers={"content-type": "application/json"})
            assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
            rejected += 1
    assert rejected == 50
    _drain(stack, store)
    with _client(port, "test-reader") as client:
        assert client.get("/v1/identity/summary").json()["customers"] == 1001
        assert mismatches(client, scenario) == []


def test_sigkill_mid_replay_then_restart_keeps_totals_exact(stack):
    scenario = generate(1000, seed=13)
    port = free_port()
    proc = stack.start_service("identity", api_port=port)
    store = identity_store(stack.data_dir)
    lines = lines_of(scenario)
    publish_lines(lines, Settings(_env_file=None, kafka_bootstrap=stack.bootstrap))
    total = len(unique_valid_keys(scenario))
    wait_for(lambda: store.db.conn().execute("SELECT COUNT(*) FROM events").fetchone()[0] > total * 0.3,
             timeout=120, interval=0.02, what="a third processed")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    done_at_kill = store.db.conn().execute("SELECT COUNT(*) FROM events").fetchone()[0]
    assert done_at_kill < total + 1, "the worker finished before it was killed; the test proves nothing"
    stack.start_service("identity", api_port=port, log_name="identity-restarted")
    _drain(stack, store)
    with _client(port) as client:
        summary = client.get("/v1/identity/summary").json()
        assert summary["customers"] == 1001
        assert summary["dead_letters"] == 50
        assert mismatches(client, scenario) == []


def _assigned(port: int) -> int:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    found = re.search(r"^crm_consumer_assigned_partitions (\S+)$", text, re.M)
    return int(float(found.group(1))) if found else 0


def test_two_workers_racing_on_one_new_phone_make_one_customer(stack):
    port = free_port()
    port2 = free_port()
    stack.start_service("identity", api_port=port)
    stack.start_service("identity", api_port=port2, log_name="identity-2")
    # Both workers hold some of the 24 partitions identity consumes (3 channel topics and the 3 topics
    # of view parts, 4 partitions each).
    wait_for(lambda: (a := _assigned(port), b := _assigned(port2)) and a > 0 and b > 0 and a + b == 24,
             timeout=90, what="partitions split between two workers")
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    sources = {"pos": "pos/SH-009", "wechat": "wechat/mini", "web": "web/shop"}
    amount_total = 0
    for i in range(200):
        channel = ("pos", "wechat", "web")[i % 3]
        ident = {"phone": ["13712345091", "137-1234-5091", "+86 137 1234 5091"][i % 3]}
        if channel == "wechat":
            ident = {"wechat_openid": "o-race-1"} if i % 2 else {**ident, "wechat_openid": "o-race-1"}
        if channel == "web":
            ident = {"web_user_id": "u-race-1"} if i % 2 else {**ident, "web_user_id": "u-race-1"}
        event = {"specversion": "1.0", "id": f"race-{i}", "source": sources[channel], "type": "crm.purchase",
                 "time": f"2026-03-{1 + i % 28:02d}T12:00:00+08:00",
                 "data": {"identity": ident, "order_id": f"race-{i}", "amount": f"{i + 1}.00", "store_id": "SH-009"}}
        amount_total += i + 1
        producer.send(topics.CHANNEL_TOPICS[channel], json.dumps(event).encode(), key=f"k{i}".encode(),
                      partition=i % 4)
    producer.flush()
    store = identity_store(stack.data_dir)
    _drain(stack, store)
    with _client(port) as client:
        summary = client.get("/v1/identity/summary").json()
        assert summary["customers"] == 2  # the racing phone and the sentinel phone
        view = client.get("/v1/customers/lookup", params={"phone": "13712345091"}).json()
        assert view["stats"]["purchase_count"] == 200
        assert view["stats"]["total_spend"] == f"{amount_total}.00"
        assert view["stats"]["purchase_days"] == 28
        assert sorted(i["type"] for i in view["identifiers"]) == ["phone", "web_user_id", "wechat_openid"]


def test_crm_up_then_demo_works_as_the_readme_says(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "OTEL_"))}
    port = free_port()
    env.update({"CRM_DATA_DIR": str(tmp_path / "data"), "CRM_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
                "CRM_IDENTITY_PORT": str(port), "CRM_LOYALTY_PORT": str(free_port()),
                "CRM_ALERTS_PORT": str(free_port()), "CRM_CAMPAIGNS_PORT": str(free_port()),
                "CRM_CONSOLE_PORT": str(free_port())})
    up = subprocess.Popen([sys.executable, "-m", "crm.cli", "up"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", up, timeout=120)
        demo = subprocess.run([sys.executable, "-m", "crm.cli", "demo", "--people", "40"], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=180)
        assert demo.returncode == 0, demo.stderr
        assert "accepted" in demo.stdout and "stats:" in demo.stdout
        assert demo.stdout.count("purchase_count") == 3
        # Every service's part of the view, filled in from its events.
        assert demo.stdout.count("  loyalty: ") == 3 and demo.stdout.count("  alerts: ") == 3
        assert "launched campaign cmp_" in demo.stdout and demo.stdout.count("  campaigns: ") == 3
        # The demo runs as admin, yet prints phones masked.
        assert not re.search(r"\+86\d{11}", demo.stdout)
    finally:
        up.send_signal(signal.SIGINT)
        out, _ = up.communicate(timeout=60)
    assert up.returncode == 0
    assert "CRM platform is up." in out and "API key" in out
    assert "stopping" in out
    # The broker was stopped with it.
    time.sleep(0.5)
    from crm.broker import reachable

    assert not reachable(env["CRM_KAFKA_BOOTSTRAP"])


def test_tests_run_from_repo_root():
    assert (ROOT / "pyproject.toml").exists()
