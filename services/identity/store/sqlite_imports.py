"""Identity's SQLite adapter, issue 14's import operations: import jobs, their rejected rows, and the home store
a member file declared (a private mixin of the adapter)."""

from __future__ import annotations

import json

from services.identity.store import HomeStoreRow, ImportJob, ImportRowError
from shared.storage.base import chunks as _chunks
from shared.storage.base import in_placeholders as _in

IMPORTS_SQL = """
CREATE TABLE IF NOT EXISTS import_jobs (
  job_id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, files TEXT NOT NULL, options TEXT NOT NULL,
  progress TEXT NOT NULL, counts TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
  by TEXT NOT NULL, error TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS import_jobs_status ON import_jobs(status);
CREATE TABLE IF NOT EXISTS import_errors (
  job_id TEXT NOT NULL, file TEXT NOT NULL, line INTEGER NOT NULL, col TEXT NOT NULL, reason TEXT NOT NULL,
  PRIMARY KEY (job_id, file, line, col)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS home_stores (
  record_id TEXT PRIMARY KEY, store_id TEXT NOT NULL, time_ms INTEGER NOT NULL
) WITHOUT ROWID;
"""

_JOB_COLS = "job_id, kind, status, files, options, progress, counts, created_at, updated_at, by, error"


def _job(row: tuple) -> ImportJob:
    jid, kind, status, files, options, progress, counts, created, updated, by, error = row
    return ImportJob(jid, kind, status, json.loads(files), json.loads(options), json.loads(progress),
                     json.loads(counts), created, updated, by, error)


class SqliteImports:
    """Mixed into the sqlite adapter; uses the adapter's database."""

    def put_import_job(self, job: ImportJob) -> None:
        """Create or replace a job (its progress and counts move together, in the caller's transaction)."""
        self.db.conn().execute(
            f"INSERT OR REPLACE INTO import_jobs({_JOB_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (job.job_id, job.kind, job.status, json.dumps(job.files), json.dumps(job.options),
             json.dumps(job.progress), json.dumps(job.counts), job.created_at, job.updated_at, job.by, job.error))

    def import_job(self, job_id: str) -> ImportJob | None:
        """One job, or None."""
        row = self.db.conn().execute(f"SELECT {_JOB_COLS} FROM import_jobs WHERE job_id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def unfinished_import_jobs(self) -> list[ImportJob]:
        """Jobs still running (a process stopped in the middle of them), oldest first."""
        rows = self.db.conn().execute(
            f"SELECT {_JOB_COLS} FROM import_jobs WHERE status = 'running' ORDER BY created_at, job_id")
        return [_job(r) for r in rows]

    def add_import_errors(self, rows: list[ImportRowError]) -> None:
        """Keep rejected rows (the same row, line and column again changes nothing: a resumed job repeats some)."""
        self.db.conn().executemany("INSERT OR IGNORE INTO import_errors VALUES (?,?,?,?,?)",
                                   [(r.job_id, r.file, r.line, r.column, r.reason) for r in rows])

    def import_errors(self, job_id: str, *, offset: int, limit: int) -> list[ImportRowError]:
        """A job's rejected rows by file and line."""
        rows = self.db.conn().execute(
            "SELECT job_id, file, line, col, reason FROM import_errors WHERE job_id = ?"
            " ORDER BY file, line, col LIMIT ? OFFSET ?", (job_id, limit, offset))
        return [ImportRowError(*r) for r in rows]

    def add_home_stores(self, rows: list[HomeStoreRow]) -> None:
        """Keep each record's latest declared home store (equal times go to the higher store id)."""
        self.db.conn().executemany(
            "INSERT INTO home_stores VALUES (?,?,?) ON CONFLICT (record_id) DO UPDATE SET"
            " store_id = excluded.store_id, time_ms = excluded.time_ms"
            " WHERE (excluded.time_ms, excluded.store_id) > (home_stores.time_ms, home_stores.store_id)",
            [(r.record_id, r.store_id, r.time_ms) for r in rows])

    def home_stores_of(self, root_ids: list[str]) -> dict[str, str]:
        """Per active customer with a declared home store, the latest one over every record it holds."""
        latest: dict[str, tuple[int, str]] = {}
        for part in _chunks(list(dict.fromkeys(root_ids)), 500):
            rows = self.db.conn().execute(
                f"SELECT r.root_id, h.time_ms, h.store_id FROM records r JOIN home_stores h"
                f" ON h.record_id = r.id WHERE r.root_id IN ({_in(part)})", part)
            for root, time_ms, store in rows:
                latest[root] = max(latest.get(root, (time_ms, store)), (time_ms, store))
        return {root: store for root, (_, store) in latest.items()}

    def named_stores_of(self, root_ids: list[str]) -> dict[str, tuple[str | None, str | None]]:
        """Per active customer with either, (the store staff assigned it, the latest home store a member file
        declared over every record it holds): what the owner rule reads besides purchases, in one query."""
        assigned: dict[str, str] = {}
        latest: dict[str, tuple[int, str]] = {}
        for part in _chunks(list(dict.fromkeys(root_ids)), 250):
            marks = _in(part)
            rows = self.db.conn().execute(
                f"SELECT customer_id, NULL, value FROM assignments WHERE kind = 'store' AND customer_id IN ({marks})"
                f" UNION ALL SELECT r.root_id, h.time_ms, h.store_id FROM records r JOIN home_stores h"
                f" ON h.record_id = r.id WHERE r.root_id IN ({marks})", [*part, *part])
            for root, time_ms, store in rows:
                if time_ms is None:
                    assigned[root] = store
                else:
                    latest[root] = max(latest.get(root, (time_ms, store)), (time_ms, store))
        return {root: (assigned.get(root), latest[root][1] if root in latest else None)
                for root in assigned.keys() | latest.keys()}
