"""Issue 16: every SQLite connection of a store keeps its scratch tables and sorts in memory (a temporary file
with a 2 MB cache spilled a campaign's 100,000 wanted ids to disk: 3.4 s of its results)."""

from __future__ import annotations

import sqlite3
import threading

from shared.storage.base import SqliteDb


def test_each_threads_connection_keeps_temporary_tables_in_memory(tmp_path):
    db = SqliteDb(tmp_path / "x.db", "CREATE TABLE IF NOT EXISTS t (id TEXT PRIMARY KEY);")
    seen = [db.conn().execute("PRAGMA temp_store").fetchone()[0]]
    other = threading.Thread(target=lambda: seen.append(db.conn().execute("PRAGMA temp_store").fetchone()[0]))
    other.start()
    other.join()
    assert seen == [2, 2]  # 2: MEMORY (0, the default, lets SQLite put them in a file)
    c = db.conn()
    c.execute("CREATE TEMP TABLE wanted (id TEXT PRIMARY KEY) WITHOUT ROWID")
    c.executemany("INSERT INTO temp.wanted VALUES (?)", ((f"c_{n:06d}",) for n in range(20_000)))
    assert c.execute("SELECT COUNT(*) FROM temp.wanted").fetchone()[0] == 20_000
    db.close()



def test_a_bulk_write_of_no_rows_prepares_no_statement_and_any_other_writes_every_row(tmp_path):
    # Issue 13: most of a small batch's bulk writes have nothing to write; sqlite3 compiled each anyway.
    db = SqliteDb(tmp_path / "x.db", "CREATE TABLE IF NOT EXISTS t (id TEXT PRIMARY KEY);")
    c = db.conn()
    compiled: list[tuple] = []  # the authorizer is asked about every statement SQLite prepares
    c.set_authorizer(lambda *action: compiled.append(action) or sqlite3.SQLITE_OK)
    c.executemany("INSERT INTO t VALUES (?)", [])
    c.executemany("INSERT INTO t VALUES (?)", ())
    assert compiled == []
    c.executemany("INSERT INTO t VALUES (?)", [("a",), ("b",)])
    c.executemany("INSERT INTO t VALUES (?)", ((x,) for x in "cd"))  # rows of unknown length: written as they come
    c.set_authorizer(None)
    assert compiled and all(action[1] == "t" for action in compiled)
    assert [r[0] for r in c.execute("SELECT id FROM t ORDER BY id")] == ["a", "b", "c", "d"]
    db.close()
