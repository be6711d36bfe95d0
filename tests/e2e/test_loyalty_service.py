"""Loyalty started as a user starts it: 100 concurrent redemptions over two processes, and expiry,
expiry notices and a tier review firing on time from the service's own schedule."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer

from crm.broker import free_port
from services.loyalty.store.sqlite import SqliteLoyaltyStore
from shared.contract import topics
from shared.contract.messages import CustomerEventResolved, decode
from shared.storage.base import sqlite_path
from shared.streaming.packs import carried
from tests.conftest import wait_for
from tests.integration.loyalty.invariants import check_invariants

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def _resolved(customer: str, eid: str, kind: str, when: str, data: dict) -> bytes:
    event = {"specversion": "1.0", "id": eid, "source": "pos/SH-001", "type": kind, "time": when,
             "data": {"identity": {"member_id": customer}, **data}}
    return CustomerEventResolved(customer_id=customer, record_id=customer, event=event,
                                 resolved_at=datetime.now(UTC)).model_dump_json().encode()


def _publish(bootstrap: str, messages: list[tuple[str, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for key, value in messages:
        producer.send(topics.CUSTOMER_EVENTS, value, key=key.encode())
    producer.flush()
    producer.close()


def _client(port: int, key: str) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=60)


def test_100_concurrent_redemptions_of_stock_10_across_two_processes_exactly_10_succeed(stack):
    ports = [free_port(), free_port()]
    stack.start_service("loyalty", api_port=ports[0])
    stack.start_service("loyalty", api_port=ports[1], log_name="loyalty-2")
    members = [f"c_member{i:03d}" for i in range(100)]
    _publish(stack.bootstrap, [(m, _resolved(m, f"buy-{m}", "crm.purchase", "2026-11-01T10:00:00+08:00",
                                             {"order_id": f"buy-{m}", "amount": "800.00"})) for m in members])
    store = SqliteLoyaltyStore(sqlite_path(f"sqlite:///{stack.data_dir}/crm.db", "loyalty"))
    wait_for(lambda: store.account_count() >= 100, timeout=120, what="100 members with points")
    with _client(ports[0], "test-admin") as admin:
        reward = admin.post("/v1/loyalty/rewards", json={"name": "Tea set", "points_cost": 500, "stock": 10}).json()
    results: list[tuple[int, str]] = []
    lock = threading.Lock()
    start = threading.Barrier(100)

    def redeem(i: int, member: str) -> None:
        with _client(ports[i % 2], "test-operator") as c:
            start.wait()
            r = c.post(f"/v1/loyalty/accounts/{member}/redemptions", json={"reward_id": reward["reward_id"]},
                       headers={"Idempotency-Key": f"k-{member}"})
        with lock:
            results.append((r.status_code, r.json().get("error", {}).get("code", "")))

    threads = [threading.Thread(target=redeem, args=(i, m)) for i, m in enumerate(members)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(results) == [(201, "")] * 10 + [(409, "out_of_stock")] * 90
    with _client(ports[1], "test-reader") as reader:
        assert reader.get(f"/v1/loyalty/rewards/{reward['reward_id']}").json()["stock"] == 0
        balances = [reader.get(f"/v1/loyalty/accounts/{m}").json()["points_balance"] for m in members]
    assert sorted(balances) == [300] * 10 + [800] * 90
    assert sorted(check_invariants(store, members).values()) == [300] * 10 + [800] * 90


def test_expiry_notice_expiry_and_tier_review_fire_on_time_without_a_command(stack):
    # The service runs "as of" 40 s before midnight on 2027-01-31 (Shanghai), ticking every second.
    stack.env.update(CRM_LOYALTY_CLOCK_START="2027-01-31T23:59:20+08:00", CRM_LOYALTY_SCHEDULE_INTERVAL_S="1")
    port = free_port()
    stack.start_service("loyalty", api_port=port)
    # A second worker runs the same schedule on the same accounts: nothing may happen twice.
    stack.start_service("loyalty", api_port=free_port(), log_name="loyalty-2")
    # Its clock started before it answered /readyz: 40 s (and a 1 s tick) on from here it is past midnight too.
    second_past_midnight = time.monotonic() + 42
    c = "c_ontime"
    buys = [("2026-01-31T12:00:00+08:00", "100.00")]  # 365 days on: expires at the end of 2027-01-31
    buys += [(f"{d}T12:00:00+08:00", "750.00") for d in ("2026-11-10", "2026-11-20", "2026-12-05", "2026-12-15",
                                                         "2027-01-03", "2027-01-08")]  # C's averages exactly
    msgs = [(c, _resolved(c, f"ot-{i}", "crm.purchase", when, {"order_id": f"ot-{i}", "amount": amount}))
            for i, (when, amount) in enumerate(buys)]
    # A refund late on Jan 31 takes Nov..Jan below C's spend: the Feb 1 review downgrades.
    msgs.append((c, _resolved(c, "ot-r", "crm.refund", "2027-01-31T23:00:00+08:00", {"order_id": "ot-6",
                                                                                       "amount": "0.01"})))
    _publish(stack.bootstrap, msgs)
    with _client(port, "test-reader") as reader:
        # 100 + 4,500 less the point the 0.01 refund takes (floor(750 x 74,999 / 75,000) = 749), seen before
        # midnight: so what follows is the schedule's doing, not the consumption's.
        before = wait_for(lambda: (r := reader.get(f"/v1/loyalty/accounts/{c}")).status_code == 200
                          and r.json()["points_balance"] == 4599 and r.json(), timeout=30, what="the purchases kept")
        assert before["tier"] == "C"
        seen: dict[str, list] = {}
        consumer = KafkaConsumer(topics.LOYALTY_EVENTS, bootstrap_servers=stack.bootstrap, group_id=None,
                                 auto_offset_reset="earliest", consumer_timeout_ms=500)

        def drain() -> int:
            n = 0
            for msg in carried(consumer):
                m = decode(msg.value)
                assert msg.key == c.encode()
                seen.setdefault(m.kind, []).append(m)
                n += 1
            return n

        def arrived(kind: str):
            drain()
            return seen.get(kind)

        notice = wait_for(lambda: arrived("loyalty.expiry_announced"), timeout=30, what="expiry notice")
        assert [(n.points, n.expires_at) for n in notice] == [(100, datetime(2027, 1, 31, 16, tzinfo=UTC))]
        expired = wait_for(lambda: arrived("loyalty.points_expired"), timeout=90, what="points expired on time")
        assert [e.points for e in expired] == [100]
        down = wait_for(lambda: [t for t in arrived("loyalty.tier_changed") or [] if t.direction == "downgrade"],
                        timeout=90, what="the review's downgrade")
        assert [(t.previous, t.tier) for t in down] == [("C", None)]
        after = reader.get(f"/v1/loyalty/accounts/{c}").json()
        assert (after["points_balance"], after["tier"]) == (4499, None)
        statement = reader.get(f"/v1/loyalty/accounts/{c}/statements/2027-02").json()
        assert (statement["expired"], statement["closing"]) == (100, 4499)
        assert json.loads(json.dumps(seen["loyalty.expiry_announced"][0].model_dump(mode="json")))["balance"] == 4599
        wait_for(lambda: time.monotonic() > second_past_midnight and drain() == 0, timeout=90, interval=1,
                 what="the second worker's schedule past midnight too, and quiet")
        consumer.close()
    assert [len(seen[k]) for k in ("loyalty.expiry_announced", "loyalty.points_expired")] == [1, 1]
    assert [t.direction for t in seen["loyalty.tier_changed"]] == ["upgrade", "downgrade"]
    store = SqliteLoyaltyStore(sqlite_path(f"sqlite:///{stack.data_dir}/crm.db", "loyalty"))
    assert check_invariants(store, [c]) == {c: 4499}
