"""Issue 15, clv, store contract (SQLite and MongoDB): spend per purchase day through the membership mapping,
and the spend model kept once per as-of date."""

from __future__ import annotations

from datetime import date

from shared.churn import History
from shared.clv import Spending, SpendModel, spendings, summarised
from shared.contract.facts import PurchaseFact
from shared.storage.membership import Membership


def _purchase(n: int, record: str, day: str, fen: int) -> PurchaseFact:
    return PurchaseFact("pos/SH-001", f"e{n}", record, f"o{n}", fen, "SH-001", 0, day)


def test_spend_is_summed_per_day_and_customer_and_follows_merges_and_unmerges(store):
    with store.transaction():
        store.add_purchases([_purchase(1, "c_a", "2026-11-01", 1000), _purchase(2, "c_a", "2026-11-01", 250),
                             _purchase(3, "c_b", "2026-11-01", 5), _purchase(4, "c_b", "2026-11-03", 700),
                             _purchase(5, "c_c", "2026-11-05", 99), _purchase(6, "c_a", "2026-12-01", 1)])
        store.add_purchases([_purchase(2, "c_a", "2026-11-01", 250)])  # the same purchase again counts once
    until = date(2026, 11, 30)
    apart = {"c_a": {date(2026, 11, 1): 1250}, "c_b": {date(2026, 11, 1): 5, date(2026, 11, 3): 700},
             "c_c": {date(2026, 11, 5): 99}}
    assert store.purchase_spend(until=until) == apart
    with store.transaction():
        store.apply_memberships([Membership("c_b", "c_a", "2026-11-20T00:00:01.000000Z")])
    joined = {"c_a": {date(2026, 11, 1): 1255, date(2026, 11, 3): 700}, "c_c": {date(2026, 11, 5): 99}}
    assert store.purchase_spend(until=until) == joined
    assert store.purchase_spend(until=until, customer_id="c_a") == {"c_a": joined["c_a"]}
    assert store.purchase_spend(until=date(2026, 12, 31), customer_id="c_a")["c_a"][date(2026, 12, 1)] == 1
    assert store.purchase_spend(until=date(2026, 10, 31)) == {}
    with store.transaction():
        store.apply_memberships([Membership("c_b", "c_b", "2026-11-20T00:00:02.000000Z")])
    assert store.purchase_spend(until=until) == apart


def test_the_spend_model_is_kept_once_per_as_of_date(store):
    first = SpendModel(6.25, 3.74, 15.44, 946, date(1997, 9, 30))
    assert store.spend_model(first.as_of) is None
    with store.transaction():
        store.put_spend_model(first, fitted_at="2026-11-20T00:00:01.000000Z")
    with store.transaction():  # a second fit racing the first leaves the first in place
        store.put_spend_model(SpendModel(1.0, 2.0, 3.0, 4, first.as_of), fitted_at="2026-11-20T00:00:02.000000Z")
    assert store.spend_model(first.as_of) == (first, "2026-11-20T00:00:01.000000Z")
    assert store.spend_model(date(1997, 10, 1)) is None


def test_summaries_summed_by_the_database_equal_the_summaries_of_every_day(store):
    """First and last day, repeat days and repeat-day spend per customer, read summed per record, are the figures
    the per-day read gives, through a merge (two records buying on one day: one day) and its unmerge."""
    with store.transaction():
        store.add_purchases([_purchase(1, "c_a", "2026-11-01", 1000), _purchase(2, "c_a", "2026-11-01", 250),
                             _purchase(3, "c_b", "2026-11-01", 5), _purchase(4, "c_b", "2026-11-15", 700),
                             _purchase(5, "c_c", "2026-11-05", 99), _purchase(6, "c_a", "2026-11-08", 40),
                             _purchase(7, "c_a", "2026-12-01", 1), _purchase(8, "c_d", "2026-12-02", 3)])
    until = date(2026, 11, 29)
    week = 7.0
    apart = {"c_a": summarised(date(2026, 11, 1), date(2026, 11, 8), 2, 1290, 1250, until),
             "c_b": summarised(date(2026, 11, 1), date(2026, 11, 15), 2, 705, 5, until),
             "c_c": summarised(date(2026, 11, 5), date(2026, 11, 5), 1, 99, 99, until)}
    assert store.purchase_summaries(until=until) == apart
    # By hand: c_a bought on 11-01 and 11-08 (one repeat day of 40 fen), 1 week apart, 4 weeks before until.
    assert apart["c_a"] == Spending(History(1, 7 / week, 28 / week), 40)
    assert apart["c_b"] == Spending(History(1, 14 / week, 28 / week), 700)
    assert apart["c_c"] == Spending(History(0, 0.0, 24 / week), 0)
    with store.transaction():
        store.apply_memberships([Membership("c_b", "c_a", "2026-11-20T00:00:01.000000Z")])
    # Joined: days 11-01 (1255), 11-08 (40), 11-15 (700); the first day's spend is both records' on it.
    joined = {"c_a": Spending(History(2, 14 / week, 28 / week), 740), "c_c": apart["c_c"]}
    assert store.purchase_summaries(until=until) == joined
    assert joined == spendings(store.purchase_spend(until=until), until)
    with store.transaction():
        store.apply_memberships([Membership("c_b", "c_b", "2026-11-20T00:00:02.000000Z")])
    assert store.purchase_summaries(until=until) == apart
    assert store.purchase_summaries(until=date(2026, 10, 31)) == {}
