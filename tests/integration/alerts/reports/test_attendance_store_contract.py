"""The attendance aggregate's contract, for both alerts store adapters (SQLite, MongoDB via mongomock): only
facts new to the store count, an order's refunds count once whichever came first, covers keep the largest party,
and the sheet's reads take a store's month and each customer's tier."""

from __future__ import annotations

from datetime import date

from services.alerts.reports.attendance import SittingFact, SittingRow
from services.alerts.store import LoyaltyRow
from shared.contract.facts import RefundFact
from shared.storage.membership import Membership

NOV, DEC = date(2026, 11, 1), date(2026, 12, 1)


def seat(n: str, record: str, day: str, sitting: str, amount: int, covers: int | None = None, *,
         store: str = "BJ-01", order: str | None = None) -> SittingFact:
    return SittingFact("pos/BJ-01", n, order or n, record, store, day, sitting, amount, covers)


def back(n: str, order: str, amount: int, record: str = "r_a") -> RefundFact:
    return RefundFact("pos/BJ-01", n, record, order, amount, 0)


def rows(store, store_id: str = "BJ-01", first: date = NOV, until: date = DEC) -> list[SittingRow]:
    return sorted(store.sittings_at(store_id, first=first, until=until), key=lambda r: (r.record_id, r.day, r.sitting))


def test_purchases_of_one_sitting_add_up_and_a_repeat_counts_nothing(store):
    with store.transaction():
        store.add_sittings([seat("p1", "r_a", "2026-11-02", "lunch", 100000, 10),
                            seat("p2", "r_a", "2026-11-02", "lunch", 20000, 8),
                            seat("p3", "r_a", "2026-11-02", "dinner", 90000),
                            seat("p3", "r_a", "2026-11-02", "dinner", 90000)], refunds=[])  # twice in one batch
    with store.transaction():
        store.add_sittings([seat("p1", "r_a", "2026-11-02", "lunch", 100000, 10),  # a redelivery
                            seat("p4", "r_b", "2026-11-30", "", 5000, 2),
                            seat("p5", "r_b", "2026-12-01", "", 7000, 3),  # December
                            seat("p6", "r_b", "2026-11-05", "", 9000, 1, store="SH-02")], refunds=[])
    assert rows(store) == [SittingRow("r_a", "2026-11-02", "dinner", 1, 90000, 0, None),
                           SittingRow("r_a", "2026-11-02", "lunch", 2, 120000, 0, 10),
                           SittingRow("r_b", "2026-11-30", "", 1, 5000, 0, 2)]
    assert rows(store, first=DEC, until=date(2027, 1, 1)) == [SittingRow("r_b", "2026-12-01", "", 1, 7000, 0, 3)]
    assert rows(store, "SH-02") == [SittingRow("r_b", "2026-11-05", "", 1, 9000, 0, 1)]
    with store.transaction():  # a later purchase of the same sitting with a bigger party
        store.add_sittings([seat("p7", "r_a", "2026-11-02", "dinner", 1000, 12)], refunds=[])
    assert rows(store)[0] == SittingRow("r_a", "2026-11-02", "dinner", 2, 91000, 0, 12)


def test_a_refund_counts_once_whether_it_comes_before_or_after_its_purchase(store):
    with store.transaction():
        store.add_sittings([], refunds=[back("x1", "o1", 1000), back("x1", "o1", 1000)])  # before; and twice
    with store.transaction():
        store.add_sittings([seat("p1", "r_a", "2026-11-02", "lunch", 5000, order="o1"),
                            seat("p2", "r_a", "2026-11-03", "lunch", 4000, order="o2")],
                           refunds=[back("x2", "o2", 500)])  # in the same batch as its purchase
    with store.transaction():
        store.add_sittings([], refunds=[back("x3", "o1", 300), back("x1", "o1", 1000)])  # after; and a repeat
    assert rows(store) == [SittingRow("r_a", "2026-11-02", "lunch", 1, 5000, 1300, None),
                           SittingRow("r_a", "2026-11-03", "lunch", 1, 4000, 500, None)]
    with store.transaction():  # the same order sent again under another event id: its refunds still count once
        store.add_sittings([seat("p9", "r_a", "2026-11-04", "dinner", 5000, order="o1")],
                           refunds=[back("x4", "o1", 200)])
    assert rows(store) == [SittingRow("r_a", "2026-11-02", "lunch", 1, 5000, 1500, None),
                           SittingRow("r_a", "2026-11-03", "lunch", 1, 4000, 500, None),
                           SittingRow("r_a", "2026-11-04", "dinner", 1, 5000, 0, None)]


def test_tiers_follow_the_customer_s_own_part_else_its_records_newest(store):
    with store.transaction():
        store.put_loyalty([LoyaltyRow("c_a", "A", 10, "v2"), LoyaltyRow("r_b", "B", 5, "v3"),
                           LoyaltyRow("r_c", "C", 5, "v1"), LoyaltyRow("r_d", "B", 5, "v4")])
        store.apply_memberships([Membership("r_b", "c_a", "2026-11-20T00:00:01.000000Z"),
                                 Membership("r_c", "c_c", "2026-11-20T00:00:01.000000Z"),
                                 Membership("r_d", "c_c", "2026-11-20T00:00:01.000000Z")])
    assert store.tiers_of(["c_a", "c_c", "c_none"]) == {"c_a": "A", "c_c": "B", "c_none": None}


def test_an_erasure_forgets_the_customer_s_sittings_and_leaves_the_others(store):
    with store.transaction():
        store.add_sittings([seat("p1", "r_a", "2026-11-02", "lunch", 5000, 2, order="o1"),
                            seat("p2", "r_b", "2026-11-02", "lunch", 4000, 3, order="o2"),
                            seat("p3", "r_x", "2026-11-02", "lunch", 3000, 1, order="o3")],
                           refunds=[back("x1", "o1", 100, "r_b"), back("x2", "o9", 100, "r_b")])
        store.apply_memberships([Membership("r_b", "c_a", "2026-11-20T00:00:01.000000Z")])
    with store.transaction():
        store.erase_customer("c_a", records=["r_a", "r_b"], erasure_id="er1", anon="anon-1")
    assert rows(store) == [SittingRow("r_x", "2026-11-02", "lunch", 1, 3000, 0, 1)]
    with store.transaction():  # its refunds went too: its purchase kept again takes none of them
        store.add_sittings([seat("p1", "r_a", "2026-11-02", "lunch", 5000, 2, order="o1")], refunds=[])
    assert rows(store)[0] == SittingRow("r_a", "2026-11-02", "lunch", 1, 5000, 0, 2)


def test_an_order_s_refunds_take_at_most_its_amount_as_the_store_kpis_count_them(store):
    # Two orders at one lunch (o1 100.00, o2 50.00); o2 refunded 30.00 twice (a refund re-sent under a new id):
    # o2 loses 50.00, never o1's money, so the sitting is 150.00 - 50.00 (the store KPIs' sales say 100.00
    # too). At dinner the refund of 70.00 comes before its order o3 of 40.00: 40.00 of it counts.
    with store.transaction():
        store.add_sittings([], refunds=[back("x3", "o3", 7000)])
    with store.transaction():
        store.add_sittings([seat("p1", "r_a", "2026-11-02", "lunch", 10000, order="o1"),
                            seat("p2", "r_a", "2026-11-02", "lunch", 5000, order="o2"),
                            seat("p3", "r_a", "2026-11-02", "dinner", 4000, order="o3"),
                            seat("p4", "r_a", "2026-11-02", "dinner", 6000, order="o4")],
                           refunds=[back("x1", "o2", 3000)])
    with store.transaction():
        store.add_sittings([], refunds=[back("x2", "o2", 3000), back("x4", "o4", 1000)])
    assert rows(store) == [SittingRow("r_a", "2026-11-02", "dinner", 2, 10000, 4000 + 1000, None),
                           SittingRow("r_a", "2026-11-02", "lunch", 2, 15000, 5000, None)]
