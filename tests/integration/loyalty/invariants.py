"""The ledger invariants every test checks after every fault."""

from __future__ import annotations

from collections import defaultdict


def check_invariants(store, customers) -> dict[str, int]:
    """balance = sum of the ledger, never negative; no entry twice; no order keeps more than it earned.
    Returns each active customer's balance."""
    balances = {}
    for c in set(customers):
        root = store.customer_of(c)
        if root in balances:
            continue
        records = store.records_of(root)
        entries = store.entries(records, before=None, limit=10**7)
        assert len({e.entry_id for e in entries}) == len(entries)
        total = sum(e.points for e in entries)
        account = store.account(root)
        assert total >= 0, f"{root} balance below zero"
        if account is not None:
            assert account.balance == total == store.balance(records), root
        per_order = defaultdict(lambda: {"earned": 0, "refund": 0})
        for e in entries:
            if e.bucket.startswith("p:"):
                per_order[e.bucket]["refund" if e.rule == "refund" else "earned"] += e.points
        for bucket, v in per_order.items():
            assert v["refund"] <= 0 and 0 <= v["earned"] + v["refund"] <= v["earned"], bucket
        balances[root] = total
    return balances
