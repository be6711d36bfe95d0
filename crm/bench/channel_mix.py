"""The channel events ``crm bench platform`` publishes: a mix of every kind over a customer base.

Every event is valid and has an id of its own, so identity resolves each exactly once and the bench's
accounting can be exact (the generated demo scenario adds duplicates and malformed events on purpose).
"""

from __future__ import annotations

import json
import random


def _phone(n: int) -> str:
    return f"139{10_000_000 + n:08d}"  # never all zeros (a blocked test value)


def _event(kind: str, eid: str, who: int, rng: random.Random, orders: list[tuple[str, int]]) -> dict:
    ident = {"phone": _phone(who)}
    if kind == "refund" and orders:
        oid, whose = orders[rng.randrange(len(orders))]
        return {"source": "pos/SH-001", "type": "crm.refund", "data": {"identity": {"phone": _phone(whose)},
                                                                     "order_id": oid, "amount": "10.00"}}
    if kind in ("purchase", "refund"):
        amount = f"{rng.randrange(1000, 100000) / 100:.2f}"
        orders.append((eid, who))
        return {"source": "pos/SH-001", "type": "crm.purchase",
                "data": {"identity": ident, "order_id": eid, "amount": amount, "currency": "CNY", "store_id": "SH-001",
                         "items": [{"sku": "SK-1", "category": "skincare", "quantity": 1, "unit_price": amount}]}}
    if kind == "profile":
        return {"source": "web/shop", "type": "crm.profile", "data": {"identity": ident, "city": "Shanghai"}}
    if kind == "page_view":
        return {"source": "web/shop", "type": "crm.page_view",
                "data": {"identity": ident, "url": "https://shop.example/p/SK-1", "product": "SK-1"}}
    wechat = {**ident, "wechat_openid": f"o-{who}"}
    if kind == "follow":
        return {"source": "wechat/oa", "type": "crm.follow", "data": {"identity": wechat}}
    return {"source": "wechat/oa", "type": "crm.survey", "data": {"identity": wechat, "score": rng.randrange(11),
                                                                 "comment": "ok"}}


MIX = [("purchase", 40), ("refund", 5), ("profile", 10), ("page_view", 30), ("follow", 5), ("survey", 10)]


def mixed_events(count: int, *, customers: int, tag: str, seed: int) -> list[str]:
    """``count`` channel events of the mix above, each for one of ``customers`` customers (by phone)."""
    rng = random.Random(seed)
    kinds = rng.choices([k for k, _ in MIX], weights=[w for _, w in MIX], k=count)
    orders: list[tuple[str, int]] = []
    out = []
    for i, kind in enumerate(kinds):
        eid = f"{tag}-{i}"
        body = _event(kind, eid, rng.randrange(customers), rng, orders)
        out.append(json.dumps({"specversion": "1.0", "id": eid, "time": "2026-11-20T10:15:00+08:00", **body}))
    return out


def base_events(customers: int) -> list[str]:
    """One profile event per customer of the base."""
    return [json.dumps({"specversion": "1.0", "id": f"base-{n}", "source": "web/shop", "type": "crm.profile",
                        "time": "2026-11-01T10:00:00+08:00", "data": {"identity": {"phone": _phone(n)},
                                                                      "city": "Shanghai"}})
            for n in range(customers)]
