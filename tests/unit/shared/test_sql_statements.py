"""insert_rows shapes its statements for the connection's cache of prepared statements (issue 13): the rows
written must be exactly those of one statement per row."""

from __future__ import annotations

import sqlite3

import pytest

from shared.storage.base import insert_rows


def _table() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER, n INTEGER)")
    return conn


@pytest.mark.parametrize("count", [1, 2, 3, 37, 64, 299, 301])
def test_insert_rows_writes_every_row_in_order_whatever_the_count(count):
    conn = _table()
    rows = [(f"k{i:04d}", i, count) for i in range(count)]
    insert_rows(conn, "INSERT INTO t", rows)
    assert conn.execute("SELECT k, v, n FROM t ORDER BY rowid").fetchall() == rows


def test_an_upsert_meets_the_row_before_it_as_statements_in_turn_would():
    conn = _table()
    # 37 rows go in as 32, 4 and 1: the key given in the first and in the last statement keeps the later value.
    rows = [("dup", 0, 0), *[(f"k{i}", i, 0) for i in range(35)], ("dup", 99, 1)]
    insert_rows(conn, "INSERT INTO t", rows, " ON CONFLICT(k) DO UPDATE SET v = excluded.v, n = t.n + 1")
    assert conn.execute("SELECT v, n FROM t WHERE k = 'dup'").fetchone() == (99, 1)
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone() == (36,)
