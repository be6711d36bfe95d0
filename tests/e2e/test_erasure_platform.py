"""Issue 12 on the running platform, through the real broker: a customer is erased, every channel topic
is replayed from offset 0, and the person is in no service's API, and their phone (in any notation),
name and birthday are in no store file (SQLite files and their logs, read as bytes), log line, span or
outbox row; everyone else's ledger is unchanged to the point."""

from __future__ import annotations

import json
import sqlite3
import time

import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from crm.broker import free_port
from crm.platform import SERVICES
from crm.replay import publish_lines
from crm.scenario import generate
from shared.contract import topics
from shared.settings import Settings
from shared.storage.base import sqlite_path
from tests.conftest import wait_for
from tests.e2e.helpers import PersonalData, consumed, identity_store, lines_of, send_sentinels

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ADMIN = {"Authorization": "Bearer test-admin"}
# Nobody in the generated scenario: its phones use other prefixes, its birthdays fall in 1960-2004.
PHONE, NAME, BIRTHDAY, OPENID = "199 7315 2846", "Erasure Target Zhang", "1958-07-19", "oErasureTarget01"


def _target_events() -> list[dict]:
    def ev(eid: str, type_: str, source: str, identity: dict, **data) -> dict:
        return {"specversion": "1.0", "id": eid, "source": source, "type": type_, "time": "2026-11-05T10:00:00+08:00",
                "data": {"identity": identity, **data}}

    return [
        ev("era-profile", "crm.profile", "wechat/oa", {"wechat_openid": OPENID, "phone": "+86 199-7315-2846"},
           name=NAME, birthday=BIRTHDAY, email="target@example.com"),
        ev("era-buy", "crm.purchase", "pos/SH-001", {"phone": PHONE}, order_id="era-buy", amount="520.00",
           currency="CNY", store_id="SH-001", items=[{"sku": "S", "category": "skincare", "quantity": 1}]),
        ev("era-complaint", "crm.complaint", "pos/SH-001", {"phone": "0086 19973152846"},
           text=f"{NAME} was kept waiting", store_id="SH-001", severity="high"),
        ev("era-bad", "crm.purchase", "pos/SH-001", {"phone": PHONE}, order_id="era-bad", amount="not money"),
    ]


def _ledger(data_dir) -> dict[str, int]:
    with sqlite3.connect(sqlite_path(f"sqlite:///{data_dir}/crm.db", "loyalty")) as db:
        return dict(db.execute("SELECT record_id, SUM(points) FROM ledger GROUP BY record_id"))


def _replay_channels(bootstrap: str) -> int:
    """Every message of every channel topic, from offset 0, published to its topic again."""
    reader = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                           auto_offset_reset="earliest", consumer_timeout_ms=5000)
    reader.assign([TopicPartition(t, p) for t in topics.CHANNEL_TOPICS.values() for p in range(4)])
    reader.seek_to_beginning()
    # Read to the end first: publishing while reading the same topics would never reach an end.
    held = list(reader)
    reader.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for msg in held:
        producer.send(msg.topic, msg.value, key=msg.key, partition=msg.partition)
    producer.flush()
    producer.close()
    return len(held)


def test_an_erased_customer_stays_erased_through_a_replay_of_every_channel_topic(stack):
    ports = {name: free_port() for name in SERVICES}
    stack.env.update({f"CRM_{name.upper()}_PORT": str(port) for name, port in ports.items()})
    for name in SERVICES:
        stack.start_service(name, api_port=ports[name])
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    scenario = generate(150, seed=12)
    publish_lines([*lines_of(scenario), *(json.dumps(e) for e in _target_events())],
                  Settings(_env_file=None, kafka_bootstrap=stack.bootstrap))
    store = identity_store(stack.data_dir)

    def drained() -> None:
        keys = send_sentinels(stack.bootstrap)
        wait_for(lambda: all(store.event_seen(s, i) for s, i in keys), timeout=300, what="identity drained")
        resolved = store.db.conn().execute("SELECT COUNT(*) FROM events").fetchone()[0]
        for name in ("loyalty", "alerts", "campaigns"):
            wait_for(lambda n=name: consumed(ports[n], topics.CUSTOMER_EVENTS) >= resolved, timeout=300,
                     what=f"{name} consumed every resolved event")

    drained()
    found = httpx.get(f"{url['identity']}/v1/customers/lookup", params={"phone": PHONE, "reveal": "true"},
                      headers=ADMIN, timeout=10)
    assert found.status_code == 200, found.text
    target = found.json()
    customer = target["customer_id"]
    assert target["attributes"]["name"] == NAME and target["attributes"]["birthday"] == BIRTHDAY
    wait_for(lambda: httpx.get(f"{url['loyalty']}/v1/loyalty/accounts/{customer}", headers=ADMIN,
                               timeout=10).json().get("points_balance") == 520, what="the target's points")
    pattern = PersonalData(["19973152846"], dates=[BIRTHDAY], texts=[NAME])
    # The scan finds them as the platform holds them, opened with the master key (so finding nothing in any
    # file later means something); the files hold them sealed (tests/integration/flows/test_atrest_encryption.py),
    # and the erasure shreds their data keys (tests/integration/flows/test_erasure_flow.py).
    timeline = httpx.get(f"{url['identity']}/v1/customers/{customer}/timeline",
                         params={"reveal": "true", "limit": 500}, headers=ADMIN, timeout=10)
    assert pattern.search(json.dumps(target, ensure_ascii=False) + timeline.text) is not None
    ledger_before = _ledger(stack.data_dir)
    others_before = {r: p for r, p in ledger_before.items() if r != customer}
    assert len(others_before) > 100

    started = time.monotonic()
    r = httpx.post(f"{url['identity']}/v1/customers/{customer}/erasure", json={"reason": "asked at the counter"},
                   headers=ADMIN, timeout=30)
    assert r.status_code == 202, r.text
    erasure = f"{url['identity']}/v1/erasures/{r.json()['erasure_id']}"
    wait_for(lambda: httpx.get(erasure, headers=ADMIN, timeout=10).json()["status"] == "done", timeout=60,
             interval=0.1, what="every service confirmed the erasure")
    print(f"erasure done across the four services in {time.monotonic() - started:.2f} s")
    assert httpx.get(erasure, headers=ADMIN, timeout=10).json()["services"] == {
        "identity": "done", "loyalty": "done", "alerts": "done", "campaigns": "done"}

    assert _replay_channels(stack.bootstrap) > len(scenario.events)
    drained()

    # In no service's API.
    lookup = f"{url['identity']}/v1/customers/lookup"
    assert httpx.get(lookup, params={"phone": PHONE}, headers=ADMIN).status_code == 404
    assert httpx.get(lookup, params={"wechat_openid": OPENID}, headers=ADMIN).status_code == 404
    assert httpx.get(f"{url['identity']}/v1/customers/{customer}", headers=ADMIN).status_code == 404
    assert httpx.get(f"{url['loyalty']}/v1/loyalty/accounts/{customer}", headers=ADMIN).status_code == 404
    assert httpx.get(f"{url['alerts']}/v1/alerts", params={"customer_id": customer}, headers=ADMIN).json()[
        "items"] == []
    letters = httpx.get(f"{url['identity']}/v1/deadletters", params={"limit": 500}, headers=ADMIN).json()["items"]
    assert not any("era-bad" in json.dumps(d) for d in letters)
    # Everyone else's ledger to the point; the erased customer's points are still counted, under no one.
    ledger_after = _ledger(stack.data_dir)
    assert {r: p for r, p in ledger_after.items() if not r.startswith("anon_")} == others_before
    assert sum(ledger_after.values()) == sum(ledger_before.values())

    # In no store file (the SQLite files and their write-ahead logs, as bytes), log line, or span.
    scanned = [f for f in stack.data_dir.rglob("*") if f.is_file()]
    assert {f.name for f in scanned} >= {f"crm.{n}.db" for n in SERVICES} | {"traces.jsonl"} | {
        f"{n}.log" for n in SERVICES}
    for f in scanned:
        hit = pattern.search(f.read_bytes().decode("latin-1"))
        assert hit is None, f"{f.name} holds the erased person's {hit.group(0)[:3]}…"
