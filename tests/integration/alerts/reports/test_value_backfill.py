"""Issue 15, value: a store upgraded with purchases kept before the customer-value aggregate existed fills the
aggregate from them once when opened, so the customer-value report and the CLV model (which read the aggregate)
see the whole history; a store whose purchases all went through the aggregate adds nothing. SQLite and mongomock.
"""

from __future__ import annotations

from datetime import date

import pytest

from services.alerts.reports.value import ValueTotals
from services.alerts.store.mongo import MongoAlertsStore
from services.alerts.store.sqlite import SqliteAlertsStore
from shared.contract.facts import PurchaseFact
from tests.integration.shared.backends import mongo_db, sqlite_file

# Kept before the aggregate: (record, day, fen) as the purchases table/collection held them.
OLD = [("c_a", "2025-09-01", 10000), ("c_a", "2025-09-01", 2550), ("c_a", "2026-01-10", 4000),
       ("c_b", "2024-12-31", 999)]


def _old_purchases(store) -> None:
    """Purchases written as a store before issue 15 wrote them: the facts only, no aggregate."""
    if isinstance(store, SqliteAlertsStore):
        with store.transaction() as c:
            c.executemany("INSERT INTO purchases VALUES (?,?,?,?,?,?)",
                          [("pos/S01", f"old{n}", r, d, "S01", a) for n, (r, d, a) in enumerate(OLD)])
    else:
        store.mdb["purchases"].insert_many([{"_id": f"pos/S01\0old{n}", "record_id": r, "day": d, "store_id": "S01",
                                             "amount_minor": a} for n, (r, d, a) in enumerate(OLD)])


@pytest.fixture(params=["sqlite", "mongomock"])
def reopen(request, tmp_path):
    """A function opening the same database again as a new store (as a restarted worker does)."""
    if request.param == "sqlite":
        path = sqlite_file(tmp_path, "alerts")
        yield lambda: SqliteAlertsStore(path)
        return
    with mongo_db("mongomock") as db:
        yield lambda: MongoAlertsStore(db)


def test_purchases_kept_before_the_aggregate_enter_it_once_when_the_store_opens(reopen):
    store = reopen()
    # The upgrade: forget that this store ever filled its aggregate, then history without it.
    if isinstance(store, SqliteAlertsStore):
        with store.transaction() as c:
            c.execute("DELETE FROM marks WHERE name = 'value_days.backfilled'")
    else:
        store.mdb["marks"].delete_many({})
    _old_purchases(store)
    assert store.value_totals(since=date(2025, 7, 1), until=date(2026, 6, 30)) == []
    store = reopen()
    with store.transaction():  # after the upgrade a purchase goes through the aggregate as always
        store.add_purchases([PurchaseFact("pos/S01", "new1", "c_b", "o-new1", 500, "S01", 0, "2026-02-02")])
    for again in (store, reopen()):  # a second opening adds nothing
        got = {t.customer_id: t for t in again.value_totals(since=date(2025, 7, 1), until=date(2026, 6, 30))}
        # c_a: 100.00 + 25.50 + 40.00 in the period over 2 days of 3 purchases; c_b: 9.99 before it, 5.00 in it.
        assert got == {
            "c_a": ValueTotals("c_a", 16550, 3, 2, 2, date(2025, 9, 1), date(2026, 1, 10)),
            "c_b": ValueTotals("c_b", 500, 1, 1, 2, date(2024, 12, 31), date(2026, 2, 2)),
        }
        assert again.purchase_spend(until=date(2026, 6, 30)) == {
            "c_a": {date(2025, 9, 1): 12550, date(2026, 1, 10): 4000},
            "c_b": {date(2024, 12, 31): 999, date(2026, 2, 2): 500},
        }
