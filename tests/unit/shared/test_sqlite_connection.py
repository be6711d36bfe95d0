"""Issue 16: every SQLite connection of a store keeps its scratch tables and sorts in memory (a temporary file
with a 2 MB cache spilled a campaign's 100,000 wanted ids to disk: 3.4 s of its results)."""

from __future__ import annotations

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
