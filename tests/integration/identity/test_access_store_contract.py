"""Identity's store contract, issue 12 access part: the store ids events named, on every adapter."""

from __future__ import annotations

from shared.contract.facts import PurchaseFact


def _purchase(eid: str, store_id: str | None) -> PurchaseFact:
    return PurchaseFact("pos/till-1", eid, "c_a", f"o-{eid}", 1_000, store_id, 1_000, "2026-03-05")


def test_store_ids_seen_lists_each_store_a_purchase_named_once(store):
    assert store.store_ids_seen() == set()
    with store.transaction():
        store.create_record("c_a", phone=None, at="T1")
        store.add_purchases([_purchase("p1", "SH-001"), _purchase("p2", "SH-001"), _purchase("p3", "BJ-009"),
                             _purchase("p4", None)])
    assert store.store_ids_seen() == {"SH-001", "BJ-009"}
