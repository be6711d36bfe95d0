"""Loyalty end to end: 20,000 purchases and refunds through the channel topics, identity and loyalty
(both started as a user starts them), with the loyalty worker killed with SIGKILL at random moments
and restarted; every account must equal an independent computation from the rules, exactly."""

from __future__ import annotations

import json
import os
import random
import signal
from decimal import Decimal
from fractions import Fraction
from math import floor

import httpx
import pytest

from crm.broker import free_port
from crm.replay import publish_lines
from services.loyalty.store.sqlite import SqliteLoyaltyStore
from shared.settings import Settings
from shared.storage.base import sqlite_path
from tests.conftest import wait_for
from tests.e2e.helpers import identity_store, send_sentinels
from tests.integration.loyalty.invariants import check_invariants

pytestmark = [pytest.mark.broker, pytest.mark.slow]

STORES = ["SH-001", "SH-002", "BJ-001"]


def _event(eid: str, source: str, kind: str, when: str, data: dict) -> dict:
    return {"specversion": "1.0", "id": eid, "source": source, "type": kind, "time": when, "data": data}


def scenario(seed: int, people: int, purchases_each: int):
    """Shuffled events and, per phone, the points the rules give (computed here, independently):
    1 point per 1.00, 2 on skincare, floor per order; refunds leave floor(E x (A - R) / A), R capped at A."""
    rng = random.Random(seed)
    events, expected, used, per_order = [], {}, set(), {}
    for n in range(people):
        while (digits := f"139{rng.randrange(10**8):08d}") in used or len(set(digits[-8:])) < 3:
            pass
        used.add(digits)
        notations = [digits, f"{digits[:3]}-{digits[3:7]}-{digits[7:]}", f"+86 {digits[:3]} {digits[3:7]} {digits[7:]}"]
        openid = f"o-{seed}-{n}" if n % 5 == 0 else None
        total = 0
        if openid:  # a WeChat follower bound to the phone by a profile event: identity merges the two
            events.append(_event(f"bind-{seed}-{n}", "wechat/mini", "crm.profile", "2026-09-01T10:00:00+08:00",
                                 {"identity": {"phone": rng.choice(notations), "wechat_openid": openid},
                                  "city": "Shanghai"}))
        for i in range(purchases_each):
            oid = f"T{seed}-{n}-{i}"
            amount = Decimal(rng.randrange(100, 200000)) / 100
            category = rng.choice(["skincare", "makeup", "fragrance"])
            when = f"2026-{rng.randrange(8, 12):02d}-{rng.randrange(1, 29):02d}T{rng.randrange(9, 22):02d}:30:00+08:00"
            wechat = openid is not None and i % 4 == 0
            ident = {"wechat_openid": openid} if wechat else {"phone": rng.choice(notations)}
            source = "wechat/mini" if wechat else f"pos/{rng.choice(STORES)}"
            events.append(_event(oid, source, "crm.purchase", when, {
                "identity": ident, "order_id": oid, "amount": str(amount), "currency": "CNY",
                "store_id": source.split("/")[1], "items": [{"sku": f"SK-{i % 7}", "category": category,
                                                             "quantity": 1, "unit_price": str(amount)}]}))
            earned = floor(Fraction(amount) * (2 if category == "skincare" else 1))
            refunded = Decimal(0)
            for j in range(rng.choice([0] * 9 + [1, 2, 3])):
                part = (amount * Decimal(rng.choice([10, 25, 50, 60, 100])) / 100).quantize(Decimal("0.01"))
                refunded += part
                events.append(_event(f"R{seed}-{n}-{i}-{j}", "pos/SH-001", "crm.refund",
                                     f"2026-11-{rng.randrange(1, 25):02d}T12:00:00+08:00",
                                     {"identity": {"phone": rng.choice(notations)}, "order_id": oid,
                                      "amount": str(part)}))
            a, r = Fraction(amount), min(Fraction(refunded), Fraction(amount))
            per_order[oid] = floor(earned * (a - r) / a)
            total += per_order[oid]
        expected[digits] = total
    facts = sum(1 for e in events if e["type"] in ("crm.purchase", "crm.refund"))
    events += [json.loads(json.dumps(e)) for e in rng.sample(events, len(events) // 30)]  # redelivered twice
    rng.shuffle(events)
    return events, expected, facts, per_order


def _facts_kept(store: SqliteLoyaltyStore) -> int:
    q = "SELECT (SELECT COUNT(*) FROM purchases) + (SELECT COUNT(*) FROM refunds)"
    return store.db.conn().execute(q).fetchone()[0]


def test_20000_purchases_and_refunds_with_sigkills_end_exact(stack):
    events, expected, facts, per_order = scenario(31, people=220, purchases_each=82)
    assert facts >= 20_000
    stack.env.update(CRM_LOYALTY_CATEGORY_MULTIPLIERS="skincare=2", CRM_LOYALTY_EXPIRY_MODE="never")
    id_port, loy_port = free_port(), free_port()
    stack.start_service("identity", api_port=id_port)
    worker = stack.start_service("loyalty", api_port=loy_port)
    store = SqliteLoyaltyStore(sqlite_path(f"sqlite:///{stack.data_dir}/crm.db", "loyalty"))
    publish_lines([json.dumps(e) for e in events], Settings(_env_file=None, kafka_bootstrap=stack.bootstrap))
    rng = random.Random(77)
    for k, share in enumerate(rng.uniform(a, a + 0.15) for a in (0.15, 0.45, 0.7)):
        wait_for(lambda s=share: _facts_kept(store) >= facts * s, timeout=240, interval=0.02,
                 what=f"{share:.0%} of the facts kept")
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        assert _facts_kept(store) < facts, "loyalty finished before it was killed; the test proves nothing"
        check_invariants(store, [r[0] for r in store.db.conn().execute("SELECT customer_id FROM accounts")])
        worker = stack.start_service("loyalty", api_port=loy_port, log_name=f"loyalty-{k + 1}")
    sentinels = send_sentinels(stack.bootstrap)
    ids = identity_store(stack.data_dir)
    wait_for(lambda: all(ids.event_seen(s, i) for s, i in sentinels), timeout=240, what="identity drained")
    wait_for(lambda: _facts_kept(store) == facts, timeout=240, what="every fact kept by loyalty")
    auth = {"Authorization": "Bearer test-reader"}
    got, customers = {}, {}
    with httpx.Client(timeout=30, headers=auth) as client:
        for digits in expected:
            cid = client.get(f"http://127.0.0.1:{id_port}/v1/customers/lookup", params={"phone": digits}).json()
            customers[digits] = cid["customer_id"]
            account = client.get(f"http://127.0.0.1:{loy_port}/v1/loyalty/accounts/{cid['customer_id']}").json()
            got[digits] = account["points_balance"]
        assert got == expected
        assert sum(1 for c in customers.values() if c) == len(expected)
        check_invariants(store, list(customers.values()))

        def views_agree() -> bool:
            for digits, cid in list(customers.items())[:60]:
                view = client.get(f"http://127.0.0.1:{id_port}/v1/customers/{cid}").json()
                if (view.get("loyalty") or {}).get("points_balance") != expected[digits]:
                    return False
            return True

        # The single customer view carries loyalty's part (identity consumes crm.loyalty.events).
        wait_for(views_agree, timeout=120, interval=1, what="loyalty part in the customer views")
        _unmerge_splits_back_exactly(stack, id_port, loy_port, ids, store, customers, expected, per_order)
    assert store.dead_letter_count() == 0


def _unmerge_splits_back_exactly(stack, id_port, loy_port, ids, store, customers, expected, per_order) -> None:
    """Undo one of the merges identity made (a WeChat follower bound to a phone): loyalty must give each
    side exactly the points of its own orders."""
    conn = ids.db.conn()
    merges = conn.execute("SELECT merge_id, survivor_id, merged_id FROM merges WHERE undone_at IS NULL"
                          " ORDER BY merge_id").fetchall()
    assert len(merges) >= 10, "the scenario should have made identity merge WeChat followers into phones"
    by_customer = {cid: digits for digits, cid in customers.items()}
    chosen = next((m for m in merges
                   if conn.execute("SELECT COUNT(*) FROM purchases WHERE record_id = ?", (m[2],)).fetchone()[0]), None)
    assert chosen is not None, "no merge moved purchases"
    merge_id, survivor, merged = chosen
    with httpx.Client(timeout=30, headers={"Authorization": "Bearer test-operator"}) as op:
        r = op.post(f"http://127.0.0.1:{id_port}/v1/customers/{survivor}/unmerge", json={"merge_id": merge_id})
        assert r.status_code == 200, r.text
        moved = r.json()["records"]
    marks = ",".join("?" * len(moved))
    restored = [o for o, in conn.execute(f"SELECT order_id FROM purchases WHERE record_id IN ({marks})", moved)]
    want_restored = sum(per_order[o] for o in restored)
    want_survivor = expected[by_customer[survivor]] - want_restored
    assert want_restored > 0

    def split() -> tuple[int, int]:
        with httpx.Client(timeout=30, headers={"Authorization": "Bearer test-reader"}) as reader:
            a = reader.get(f"http://127.0.0.1:{loy_port}/v1/loyalty/accounts/{survivor}").json()
            b = reader.get(f"http://127.0.0.1:{loy_port}/v1/loyalty/accounts/{merged}").json()
        return a.get("points_balance"), b.get("points_balance")

    wait_for(lambda: split() == (want_survivor, want_restored), timeout=60, what="the unmerge split back")
    assert check_invariants(store, [survivor, merged]) == {survivor: want_survivor, merged: want_restored}
