"""What a consumed batch costs the alerts store does not grow with the history it holds (issue 13)."""

from __future__ import annotations

from services.alerts.store.sqlite import SqliteAlertsStore


def _steps_to_check(store: SqliteAlertsStore, keys: list[tuple[str, str]]) -> tuple[set, int]:
    """Which of ``keys`` were seen, and how many SQLite virtual-machine steps (in hundreds) it took."""
    conn, steps = store.db.conn(), [0]

    def count() -> int:
        steps[0] += 1
        return 0

    conn.set_progress_handler(count, 100)
    try:
        found = store.seen_events(keys)
    finally:
        conn.set_progress_handler(None, 100)
    return found, steps[0]


def _holding(tmp_path, name: str, events: int) -> SqliteAlertsStore:
    store = SqliteAlertsStore(tmp_path / f"{name}.db")
    with store.transaction():
        store.add_events([("pos/SH-001", f"old-{n}") for n in range(events)])
    return store


def test_checking_a_batch_for_seen_events_costs_the_same_after_20000_events_as_after_10(tmp_path):
    batch = [("pos/SH-001", "old-3"), ("pos/SH-001", "new-1"), ("wechat/oa", "old-3"), ("pos/SH-001", "old-7")]
    small, large = _holding(tmp_path, "small", 10), _holding(tmp_path, "large", 20_000)
    try:
        seen_small, cost_small = _steps_to_check(small, batch)
        seen_large, cost_large = _steps_to_check(large, batch)
    finally:
        small.close()
        large.close()
    assert seen_small == seen_large == {("pos/SH-001", "old-3"), ("pos/SH-001", "old-7")}
    # Looked up by key: reading every event ever kept took hundreds of steps more on the larger store.
    assert cost_large == cost_small, (cost_small, cost_large)


def test_an_event_named_twice_in_a_batch_is_seen_once(store):
    with store.transaction():
        store.add_events([("pos/SH-001", "e1")])
        assert store.seen_events([("pos/SH-001", "e1"), ("pos/SH-001", "e1"), ("pos/SH-001", "e2")]) == {
            ("pos/SH-001", "e1")}


def test_a_due_time_that_stays_the_same_is_not_written_again(tmp_path):
    store = SqliteAlertsStore(tmp_path / "due.db")
    try:
        with store.transaction():
            store.set_due({"c_1": 1_000, "c_2": None, "c_3": 3_000})
        conn = store.db.conn()
        with store.transaction():
            before = conn.total_changes
            store.set_due({"c_1": 1_000, "c_2": None, "c_3": 4_000})  # a batch evaluated all three again
            written = conn.total_changes - before
        # Only c_3's row changed: rewriting the others dirtied their pages for the commit to write out again.
        assert written == 1
        assert store.due_customers(until_ms=5_000, limit=10) == ["c_1", "c_3"]
        assert store.due_count(until_ms=3_500) == 1
    finally:
        store.close()
