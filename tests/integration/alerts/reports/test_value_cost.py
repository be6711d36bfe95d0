"""Keeping customer value's aggregate costs a batch the same whatever the history the store holds (issue 15):
counted in SQLite virtual-machine steps, which do not depend on the machine's load."""

from __future__ import annotations

from services.alerts.store.sqlite import SqliteAlertsStore
from shared.contract.facts import PurchaseFact, RefundFact


def _p(eid: str, record: str, day: str, order: str) -> PurchaseFact:
    return PurchaseFact("pos/S01", eid, record, order, 10000, "S01", 0, day)


def _holding(tmp_path, name: str, history: int) -> SqliteAlertsStore:
    """A store whose rows the batch below touches are the same ten purchases and refunds, beside ``history``
    purchases of other customers at another store: only the volume differs, never a touched row's state (every
    aggregate kept with the facts counts, the store KPIs' too, whose insert-or-update depends on that state)."""
    store = SqliteAlertsStore(tmp_path / f"{name}.db")
    with store.transaction():
        store.add_purchases([_p(f"old-{n}", f"c{n}", f"2025-{n % 12 + 1:02d}-{n % 28 + 1:02d}", f"o-old-{n}")
                             for n in range(10)])
        store.add_refunds([RefundFact("pos/S01", f"x-old-{n}", f"c{n}", f"o-old-{n}", 100, 0) for n in range(10)])
        store.add_purchases([PurchaseFact("pos/S99", f"hist-{n}", f"h{n % 2000}", f"o-hist-{n}", 10000, "S99", 0,
                                          f"2025-{n % 12 + 1:02d}-{n % 28 + 1:02d}") for n in range(history)])
        store.add_refunds([RefundFact("pos/S99", f"x-hist-{n}", f"h{n}", f"o-hist-{n}", 100, 0)
                           for n in range(min(history, 200))])
    return store


def _steps(store: SqliteAlertsStore) -> int:
    """SQLite virtual-machine steps the aggregate's own methods take in one batch: new purchases (one of a known
    record and day), a duplicate, a refund of a held purchase, a refund before its purchase and that purchase.
    (Only theirs: add_purchases also keeps the store KPIs' aggregates, whose cost is not this test's.)"""
    conn, steps = store.db.conn(), [0]

    def count() -> int:
        steps[0] += 1
        return 0

    def counted(method):
        def run(*args, **kwargs):
            conn.set_progress_handler(count, 1)
            try:
                return method(*args, **kwargs)
            finally:
                conn.set_progress_handler(None, 1)
        return run

    for name in ("fresh_facts", "keep_value_purchases", "keep_value_refunds"):
        setattr(store, name, counted(getattr(store, name)))
    with store.transaction():
        store.add_refunds([RefundFact("pos/S01", "x-new-1", "c7", "o-new-9", 500, 0)])
        store.add_purchases([_p("new-1", "c5", "2025-06-06", "o-new-1"),
                             _p("new-2", "c_new", "2026-01-01", "o-new-2"),
                             _p("old-3", "c3", "2025-04-04", "o-old-3"),  # held already: a duplicate
                             _p("new-9", "c7", "2026-01-02", "o-new-9")])
        store.add_refunds([RefundFact("pos/S01", "x-new-2", "c5", "o-old-5", 300, 0)])
    return steps[0]


def test_a_batch_costs_the_aggregate_the_same_after_20000_purchases_as_after_10(tmp_path):
    small, large = _holding(tmp_path, "small", 0), _holding(tmp_path, "large", 20_000)
    try:
        cost_small, cost_large = _steps(small), _steps(large)
    finally:
        small.close()
        large.close()
    # Every row is reached by its key: not one step more for a thousand times the history.
    assert cost_large == cost_small, (cost_small, cost_large)
