"""The alerts store contract for customer value's aggregate (issue 15, part 4), on every backend: kept with the
purchases and refunds (a duplicate counts once, a refund before its purchase counts once both are there), read
per customer through the membership mapping (a merge joins, an unmerge splits every past day)."""

from __future__ import annotations

from datetime import date

from services.alerts.reports.value import ValueTotals, report_of, standing_of, value_report
from services.alerts.store import LoyaltyRow
from services.alerts.store.sqlite_value import VALUE_LOG_KEEP
from shared.contract.facts import PurchaseFact, RefundFact
from shared.storage.membership import Membership
from shared.storage.owners import OwnerRow

SINCE, UNTIL = date(2025, 7, 1), date(2026, 6, 30)


def _p(n: int, record: str, day: str, amount: int, order: str | None = None) -> PurchaseFact:
    return PurchaseFact("pos/S01", f"p{n}", record, order or f"o{n}", amount, "S01", 0, day)


def _r(n: int, record: str, order: str, amount: int) -> RefundFact:
    return RefundFact("pos/S01", f"r{n}", record, order, amount, 0)


def _totals(store, since=SINCE, until=UNTIL) -> dict[str, ValueTotals]:
    return {t.customer_id: t for t in store.value_totals(since=since, until=until)}


def _history(store) -> None:
    with store.transaction():
        store.add_purchases([_p(1, "c_a", "2026-01-05", 10000), _p(2, "c_a", "2026-01-05", 5000),
                             _p(4, "c_b", "2025-05-01", 3000), _p(5, "c_b", "2026-02-01", 7000)])
        store.add_refunds([_r(2, "c_b", "o9", 1000)])  # before its purchase: counts once the purchase comes
    with store.transaction():
        store.add_purchases([_p(3, "c_a", "2026-03-10", 20000), _p(1, "c_a", "2026-01-05", 10000),
                             _p(6, "c_b", "2026-01-05", 1000), _p(9, "c_b", "2026-02-20", 4000)])
        store.add_refunds([_r(1, "c_a", "o3", 2500), _r(1, "c_a", "o3", 2500), _r(2, "c_b", "o9", 1000)])


def test_totals_count_each_purchase_and_refund_once_on_the_purchase_day(store):
    _history(store)
    got = _totals(store)
    # c_a: 10000 + 5000 + 20000 - 2500 (the duplicate purchase p1 and refund r1 count once); days 01-05, 03-10.
    assert got["c_a"] == ValueTotals("c_a", 32500, 3, 2, 2, date(2026, 1, 5), date(2026, 3, 10))
    # c_b: in the period 7000 + 1000 + 4000 - 1000 (refund r2 came before purchase p9); 2025-05-01 is before it.
    assert got["c_b"] == ValueTotals("c_b", 11000, 3, 3, 4, date(2025, 5, 1), date(2026, 2, 20))
    # As of 2026-02-10 nothing later counts: c_b's refunded purchase of 02-20 is not there yet.
    early = _totals(store, until=date(2026, 2, 10))
    assert early["c_a"] == ValueTotals("c_a", 15000, 2, 1, 1, date(2026, 1, 5), date(2026, 1, 5))
    assert early["c_b"] == ValueTotals("c_b", 8000, 2, 2, 3, date(2025, 5, 1), date(2026, 2, 1))
    assert _totals(store, until=date(2025, 4, 30)) == {}


def test_a_merge_joins_every_past_day_and_an_unmerge_splits_it_again(store):
    _history(store)
    with store.transaction():
        store.apply_memberships([Membership("c_b", "c_a", "2026-07-01T00:00:01.000000Z")])
    # One customer: a day both records bought on (01-05) is one purchase day.
    assert _totals(store) == {"c_a": ValueTotals("c_a", 43500, 6, 4, 5, date(2025, 5, 1), date(2026, 3, 10))}
    with store.transaction():
        store.apply_memberships([Membership("c_b", "c_b", "2026-07-01T00:00:02.000000Z")])
    got = _totals(store)
    assert (got["c_a"].net_minor, got["c_b"].net_minor, got["c_b"].days) == (32500, 11000, 4)


def test_a_refund_of_an_unknown_order_counts_nowhere_and_erasure_forgets_the_records(store):
    _history(store)
    with store.transaction():
        store.add_refunds([_r(7, "c_a", "o-unknown", 900)])
        store.erase_customer("c_b", records=["c_b"], erasure_id="er1", anon="anon")
    assert _totals(store) == {"c_a": ValueTotals("c_a", 32500, 3, 2, 2, date(2026, 1, 5), date(2026, 3, 10))}


def test_a_refund_takes_off_at_most_its_orders_amount(store):
    with store.transaction():
        store.add_purchases([_p(1, "c_a", "2026-01-05", 5000), _p(2, "c_a", "2026-02-01", 6000),
                             _p(4, "c_a", "2026-04-01", 10000)])
        store.add_refunds([_r(1, "c_a", "o1", 8000),  # more than its order of 50.00: takes off 50.00
                           _r(2, "c_a", "o2", 4000),  # the first of two refunds of o2 (60.00): 40.00 of it
                           _r(3, "c_a", "o3", 9000),  # before its purchase of 70.00 comes
                           _r(4, "c_a", "o4", 2500)])  # within its order: all of it
    assert _totals(store)["c_a"] == ValueTotals("c_a", 5000 - 5000 + 6000 - 4000 + 10000 - 2500, 3, 3, 3,
                                                date(2026, 1, 5), date(2026, 4, 1))
    with store.transaction():
        store.add_refunds([_r(5, "c_a", "o2", 3000)])  # 40.00 + 30.00 > 60.00: only the 20.00 left of o2
        store.add_purchases([_p(3, "c_a", "2026-03-01", 7000)])  # o3 arrives: its 90.00 refund takes 70.00
    assert _totals(store)["c_a"] == ValueTotals("c_a", 0 + 0 + 0 + 7500, 4, 4, 4, date(2026, 1, 5),
                                                date(2026, 4, 1))
    with store.transaction():
        store.add_refunds([_r(6, "c_a", "o3", 1000), _r(6, "c_a", "o3", 1000)])  # o3 is refunded in full
        store.add_purchases([_p(7, "c_a", "2026-04-01", 1500, order="o4")])  # a second line of o4: 115.00
        store.add_refunds([_r(8, "c_a", "o4", 20000)])  # o4's 25.00 + 200.00 > its 115.00: 115.00 in all
    got = _totals(store)["c_a"]
    assert (got.net_minor, got.orders) == (0, 5)


def test_every_write_the_report_reads_changes_the_generation_and_nothing_else_does(store):
    seen = [store.value_generation()]

    def changed(write) -> bool:
        with store.transaction():
            write()
        seen.append(store.value_generation())
        return seen[-1] != seen[-2]

    assert changed(lambda: store.add_purchases([_p(1, "c_a", "2026-01-05", 10000), _p(2, "c_b", "2026-01-06", 500)]))
    assert changed(lambda: store.add_refunds([_r(1, "c_a", "o1", 2500)]))
    assert changed(lambda: store.apply_memberships([Membership("c_b", "c_a", "2026-07-01T00:00:01.000000Z")]))
    assert changed(lambda: store.apply_memberships([Membership("c_b", "c_b", "2026-07-01T00:00:02.000000Z")]))
    assert changed(lambda: store.put_owners([OwnerRow("c_a", "S02", "2026-07-01T00:00:03.000000Z")]))
    assert changed(lambda: store.erase_customer("c_b", records=["c_b"], erasure_id="er1", anon="anon"))
    assert not changed(lambda: store.put_loyalty([LoyaltyRow("c_a", "gold", 10, "1")]))
    assert not changed(lambda: store.value_totals(since=SINCE, until=UNTIL))


def test_a_kept_report_brought_forward_after_each_write_is_the_report_read_whole(store):
    def check() -> None:
        whole_totals = store.value_totals(since=SINCE, until=UNTIL)
        whole = value_report(whole_totals, as_of=UNTIL, months=12)
        got = report_of(store, as_of=UNTIL, months=12)
        assert (got.rows, got.levels, got.scores, got.stage_of) == (whole.rows, whole.levels, whole.scores,
                                                                   whole.stage_of)
        owners = store.owners_of([t.customer_id for t in whole_totals])
        s01 = value_report([t for t in whole_totals if owners[t.customer_id] == "S01"], as_of=UNTIL, months=12)
        assert report_of(store, as_of=UNTIL, months=12, scope="S01", keep=lambda s: s == "S01").rows == s01.rows
        for t in whole.rows:  # an id answers for its customer now (a record left behind by a merge stands alone)
            if store.customer_of(t.customer_id) == t.customer_id:
                assert standing_of(store, t.customer_id, UNTIL) == whole.standing(t)

    _history(store)
    with store.transaction():
        store.put_owners([OwnerRow(c, "S01", "2026-01-01T00:00:00.000000Z") for c in ("c_a", "c_b")])
    check()
    steps = [
        lambda: store.add_purchases([_p(20, "r_x", "2026-05-01", 90000)]),  # a record with no mapping yet
        lambda: store.apply_memberships([Membership("r_x", "c_b", "2026-07-01T00:00:01.000000Z")]),
        lambda: store.add_refunds([_r(20, "r_x", "o20", 100000)]),  # over its order: takes 900.00
        lambda: store.apply_memberships([Membership("c_b", "c_a", "2026-07-01T00:00:02.000000Z")]),  # a merge
        lambda: store.put_owners([OwnerRow("c_c", "S01", "2026-07-01T00:00:03.000000Z")]),
        lambda: store.add_purchases([_p(21, "c_c", "2026-06-30", 100), _p(22, "c_d", "2026-06-01", 700)]),
        lambda: store.apply_memberships([Membership("c_b", "c_b", "2026-07-01T00:00:04.000000Z")]),  # unmerge
        lambda: store.put_owners([OwnerRow("c_b", "S02", "2026-07-01T00:00:05.000000Z")]),
        lambda: store.erase_customer("c_a", records=["c_a"], erasure_id="er2", anon="anon"),
    ]
    for step in steps:
        with store.transaction():
            step()
        check()


def test_the_log_of_changed_ids_reaches_back_a_bounded_number_of_generations(store):
    start = store.value_generation()
    with store.transaction():
        store.add_purchases([_p(1, "c_a", "2026-01-05", 100)])
        store.put_owners([OwnerRow("c_z", "S01", "2026-01-01T00:00:00.000000Z")])
    assert store.value_changes(after=start, upto=start + 2) == {"c_a", "c_z"}
    for n in range(VALUE_LOG_KEEP):
        with store.transaction():
            store.put_owners([OwnerRow("c_z", "S01", f"2026-01-02T00:00:00.{n:06d}Z")])
    now = store.value_generation()
    assert store.value_changes(after=start, upto=now) is None  # too far back: a report is read whole
    assert store.value_changes(after=now - 3, upto=now) == {"c_z"}


def test_erasing_a_record_still_merged_here_brings_its_old_customer_forward_too(store):
    # Identity split r_x off c_b and erased it; alerts got the erasure before the unmerge, so here r_x still
    # belongs to c_b when it goes. The report kept before must lose r_x's spend from c_b, as a whole read does.
    with store.transaction():
        store.add_purchases([_p(1, "c_b", "2026-01-05", 1000), _p(2, "r_x", "2026-02-01", 90000)])
        store.apply_memberships([Membership("r_x", "c_b", "2026-07-01T00:00:01.000000Z")])
    assert report_of(store, as_of=UNTIL, months=12).rows[0].net_minor == 91000
    with store.transaction():
        store.erase_customer("r_x", records=["r_x"], erasure_id="er1", anon="anon")
    whole = value_report(store.value_totals(since=SINCE, until=UNTIL), as_of=UNTIL, months=12)
    assert [(t.customer_id, t.net_minor) for t in whole.rows] == [("c_b", 1000)]
    assert report_of(store, as_of=UNTIL, months=12).rows == whole.rows


def test_erasing_a_customer_brings_forward_a_record_its_mapping_left_on_its_own(store):
    # r_y was merged into r_x and r_x into c_b; identity's r_y -> c_b had not come when c_b (with r_x) was erased.
    # Deleting the mappings leaves r_y, which the erasure does not name, a customer of its own: the report kept
    # before must list it, as a whole read does.
    with store.transaction():
        store.add_purchases([_p(1, "c_b", "2026-01-05", 1000), _p(2, "r_y", "2026-02-01", 500)])
        store.apply_memberships([Membership("r_x", "c_b", "2026-07-01T00:00:01.000000Z"),
                                 Membership("r_y", "r_x", "2026-07-01T00:00:01.000000Z")])
    report_of(store, as_of=UNTIL, months=12)
    with store.transaction():
        store.erase_customer("c_b", records=["c_b", "r_x"], erasure_id="er1", anon="anon")
    whole = value_report(store.value_totals(since=SINCE, until=UNTIL), as_of=UNTIL, months=12)
    assert [(t.customer_id, t.net_minor) for t in whole.rows] == [("r_y", 500)]
    assert report_of(store, as_of=UNTIL, months=12).rows == whole.rows
