"""Identity's store contract for scoped access (issue 12): each customer's owning store, the stores and
purchase days and the latest complaint store it is computed from, and conflicts filtered by owner in the
query, on every backend."""

from __future__ import annotations

from services.identity.store import ComplaintStoreRow, ConflictRow
from shared.contract.facts import PurchaseFact
from shared.storage.owners import OwnerRow


def _purchase(eid: str, record: str, store_id: str | None, day: str) -> PurchaseFact:
    return PurchaseFact("pos/till-1", eid, record, f"o-{eid}", 1000, store_id, 0, day)


def _conflict(cid: str, customers: tuple[str, ...], at: str) -> ConflictRow:
    return ConflictRow(cid, "would_merge_two_phone_customers", "wechat_openid", "ps", customers, "wechat/oa",
                       f"e-{cid}", at)


def test_store_days_of_gathers_every_record_of_each_active_customer(store):
    with store.transaction():
        for rid in ("c_a", "c_b", "c_c"):
            store.create_record(rid, phone=None, at="T1")
        store.merge("c_a", "c_b", merge_id="m1", cause={}, at="T2")
        store.add_purchases([_purchase("1", "c_a", "S01", "2026-11-01"), _purchase("2", "c_b", "S02", "2026-11-02"),
                             _purchase("3", "c_b", "S02", "2026-11-03"), _purchase("4", "c_a", "S02", "2026-11-03"),
                             _purchase("5", "c_a", None, "2026-11-04")])
    assert store.store_days_of(["c_a", "c_c"]) == {"c_a": [("S01", 1, "2026-11-01"), ("S02", 2, "2026-11-03")],
                                                   "c_c": []}


def test_owners_keep_the_newest_per_customer(store):
    with store.transaction():
        store.put_owners([OwnerRow("c_a", "S01", "T2"), OwnerRow("c_b", "S02", "T1")])
        store.put_owners([OwnerRow("c_a", "S09", "T1"), OwnerRow("c_b", None, "T3")])  # older for a, newer for b
    assert store.owners_of(["c_a", "c_b", "c_unknown"]) == {"c_a": "S01", "c_b": None, "c_unknown": None}


def test_conflicts_owned_lists_those_whose_every_customer_the_stores_own_in_order_and_pages(store):
    with store.transaction():
        store.put_owners([OwnerRow("c_a", "S01", "T1"), OwnerRow("c_a2", "S01", "T1"),
                          OwnerRow("c_b", "S02", "T1"), OwnerRow("c_n", None, "T1")])
        for row in (_conflict("x1", ("c_a", "c_a2"), "T1"), _conflict("x2", ("c_a", "c_b"), "T2"),
                    _conflict("x3", ("c_a2", "c_a"), "T3"), _conflict("x4", ("c_a", "c_n"), "T4"),
                    _conflict("x5", ("c_a", "c_x"), "T5")):
            store.add_conflict(row)
    ids = lambda rows: [c.conflict_id for c in rows]  # noqa: E731
    s01 = frozenset({"S01"})
    assert ids(store.conflicts_owned(s01, status=None, customer_id=None, offset=0, limit=10)) == ["x3", "x1"]
    assert ids(store.conflicts_owned(s01, status="open", customer_id=None, offset=1, limit=10)) == ["x1"]
    assert ids(store.conflicts_owned(s01, status=None, customer_id="c_b", offset=0, limit=10)) == []
    assert ids(store.conflicts_owned(frozenset({"S01", "S02"}), status=None, customer_id="c_b", offset=0,
                                     limit=10)) == ["x2"]
    assert store.conflict_customers("x2") == ("c_a", "c_b") and store.conflict_customers("nope") is None


def test_complaint_stores_of_gives_the_latest_complaint_store_over_every_record_of_each_active_customer(store):
    with store.transaction():
        for rid in ("c_a", "c_b", "c_c", "c_d"):
            store.create_record(rid, phone=None, at="T1")
        store.merge("c_a", "c_b", merge_id="m1", cause={}, at="T2")
        store.add_complaint_stores([ComplaintStoreRow("c_a", "S01", 100), ComplaintStoreRow("c_b", "S02", 300),
                                    ComplaintStoreRow("c_c", "S03", 200)])
        # An older complaint changes nothing; equal times go to the higher store id whatever the order.
        store.add_complaint_stores([ComplaintStoreRow("c_b", "S01", 50), ComplaintStoreRow("c_c", "S04", 200),
                                    ComplaintStoreRow("c_c", "S02", 200)])
    assert store.complaint_stores_of(["c_a", "c_c", "c_d"]) == {"c_a": "S02", "c_c": "S04"}
    assert store.complaint_stores_of(["c_b"]) == {}  # merged away: not an active customer
    with store.transaction():
        store.unmerge("m1", by="k-admin", at="T3")
    assert store.complaint_stores_of(["c_a", "c_b"]) == {"c_a": "S01", "c_b": "S02"}
    assert store.complaint_stores_of([]) == {}
