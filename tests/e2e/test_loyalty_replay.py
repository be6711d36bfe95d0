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
from services.loyalty.store_sqlite import SqliteLoyaltyStore
from shared.settings import Settings
from shared.storage import sqlite_path
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
    events, expected, used = [], {}, set()
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
            total += floor(earned * (a - r) / a)
        expected[digits] = total
    facts = sum(1 for e in events if e["type"] in ("crm.purchase", "crm.refund"))
    events += [json.loads(json.dumps(e)) for e in rng.sample(events, len(events) // 30)]  # redelivered twice
    rng.shuffle(events)
    return events, expected, facts


def _facts_kept(store: SqliteLoyaltyStore) -> int:
    q = "SELECT (SELECT COUNT(*) FROM purchases) + (SELECT COUNT(*) FROM refunds)"
    return store.db.conn().execute(q).fetchone()[0]


def test_20000_purchases_and_refunds_with_sigkills_end_exact(stack):
    events, expected, facts = scenario(31, people=220, purchases_each=82)
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
    assert store.dead_letter_count() == 0
