"""Issue 14: an identity SQLite file from before keeps its timeline when its events table is rebuilt in
arrival order at start (once, the same rows), and takes new events after it."""

from __future__ import annotations

import sqlite3

import pytest

from services.identity.store import EventRow
from services.identity.store.sqlite import SqliteIdentityStore

_OLD = """
CREATE TABLE events (
  source TEXT NOT NULL, id TEXT NOT NULL, record_id TEXT NOT NULL, type TEXT NOT NULL,
  channel TEXT NOT NULL, time TEXT NOT NULL, time_ms INTEGER NOT NULL, payload TEXT NOT NULL,
  ingested_at TEXT NOT NULL, PRIMARY KEY (source, id)
) WITHOUT ROWID;
CREATE INDEX events_record_time ON events(record_id, time_ms, source, id);
INSERT INTO events VALUES ('pos/SH-001', 'e2', 'c_a', 'crm.purchase', 'pos', 'T2', 2, '{"n":2}', 'I2');
INSERT INTO events VALUES ('web/shop', 'e1', 'c_a', 'crm.profile', 'web', 'T1', 1, '{"n":1}', 'I1');
INSERT INTO events VALUES ('pos/SH-001', 'e3', 'c_b', 'crm.purchase', 'pos', 'T3', 3, '{"n":3}', 'I3');
"""


def _rows(path) -> list[tuple]:
    with sqlite3.connect(path) as c:
        return sorted(c.execute("SELECT * FROM events"))


def test_an_older_events_table_is_rebuilt_once_with_the_same_rows_and_timeline(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as c:
        c.executescript(_OLD)
    before = _rows(path)

    store = SqliteIdentityStore(path)
    sql = store.db.conn().execute("SELECT sql FROM sqlite_master WHERE name = 'events'").fetchone()[0]
    assert "WITHOUT ROWID" not in sql.upper()
    assert _rows(path) == before
    assert [(e.source, e.id, e.payload) for e in store.timeline(["c_a"], before=None, limit=10)] == [
        ("pos/SH-001", "e2", '{"n":2}'), ("web/shop", "e1", '{"n":1}')]
    assert store.seen([("pos/SH-001", "e3"), ("pos/SH-001", "e9")]) == {("pos/SH-001", "e3")}

    with store.transaction():
        store.add_events([EventRow("pos/SH-001", "e4", "c_a", "crm.purchase", "pos", "T4", 4, '{"n":4}', "I4")])
    with pytest.raises(sqlite3.IntegrityError), store.transaction():  # the key still holds an event once
        store.add_events([EventRow("web/shop", "e1", "c_a", "crm.profile", "web", "T1", 1, '{"n":1}', "I1")])
    assert [e.id for e in SqliteIdentityStore(path).timeline(["c_a"], before=None, limit=10)] == ["e4", "e2", "e1"]
    with sqlite3.connect(path) as c:
        names = {r[0] for r in c.execute("SELECT name FROM sqlite_master")}
    assert "events_clustered" not in names and "events_record_time" in names


def test_the_rebuild_leaves_no_copy_of_the_table_in_the_write_ahead_log(tmp_path):
    # The rebuild is one transaction the size of the table: its frames stayed in the log after the commit (SQLite
    # reuses a log, it does not shrink it), a second copy of the timeline on disk for as long as identity ran.
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as c:
        c.executescript(_OLD)
        c.executemany("INSERT INTO events VALUES (?, ?, 'c_a', 'crm.purchase', 'pos', 'T', ?, ?, 'I')",
                      [("pos/SH-001", f"x{n:05d}", n, "p" * 1000) for n in range(3000)])
    before = _rows(path)

    store = SqliteIdentityStore(path)
    assert _rows(path) == before
    wal = path.with_name(path.name + "-wal")
    assert wal.stat().st_size < 512 * 1024  # the table alone is some 3 MB
    store.close()
