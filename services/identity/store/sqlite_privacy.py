"""Issue 12's personal-data operations of identity's SQLite store, mixed into ``SqliteIdentityStore``:
sealing identifiers of files from before encryption at rest, the audit log and retention, erasure.

Adapter-private (kept apart so ``sqlite.py`` holds the identity graph itself); the tables are in its schema.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from services.identity.store import ErasureRow
from shared.access.audit import AuditEntry, AuditQuery
from shared.storage import audit as audit_store
from shared.storage.base import chunks as _chunks
from shared.storage.base import in_placeholders as _in


class SqlitePrivacy:
    """Encryption-at-rest migration, audit log, retention and erasure over ``self.db`` and ``self.keys``."""

    def _seal_identifiers_of_older_files(self) -> None:
        # A file from before encryption at rest holds identifiers in clear, without the sealed column:
        # each is re-keyed to its pseudonym and sealed once, under the write lock.
        c = self.db.conn()
        if "sealed" in {r[1] for r in c.execute("PRAGMA table_info(identifiers)")}:
            return
        with self.db.transaction():
            if "sealed" in {r[1] for r in c.execute("PRAGMA table_info(identifiers)")}:
                return
            c.execute("ALTER TABLE identifiers ADD COLUMN sealed TEXT")
            rows = c.execute("SELECT type, value, record_id FROM identifiers").fetchall()
            c.executemany("UPDATE identifiers SET value = ?, sealed = ? WHERE type = ? AND value = ?",
                          [(self.keys.index(t, v), self.keys.seal(rec, f"identifiers.{t}", v), t, v)
                           for t, v, rec in rows])

    # -- issue 12, audit and retention (H5) ------------------------------------------------------------

    def audit_add(self, entries: list[AuditEntry]) -> None:
        """Append audit entries once per ``audit_id`` (a message delivered again changes nothing)."""
        audit_store.sqlite_audit_add(self.db, entries)

    def audit_find(self, query: AuditQuery, *, after: tuple[str, str] | None, limit: int) -> list[AuditEntry]:
        """Audit entries matching ``query``, newest first, after the keyset position ``after``."""
        return audit_store.sqlite_audit_find(self.db, query, after=after, limit=limit)

    def audit_scrub(self, customer_ids: list[str], *, scrub: Callable[[str], str], targets: list[str]) -> int:
        """Rewrite through ``scrub`` (an erasure) the reasons of the audit entries about these customers or
        acting on these ``targets`` (their conflicts)."""
        return audit_store.sqlite_audit_scrub(self.db, customer_ids, scrub=scrub,
                                               targets=targets)

    def audit_purge(self, *, before: str) -> int:
        """Delete audit entries older than ``before`` (retention)."""
        return audit_store.sqlite_audit_purge(self.db, before=before)

    def timeline_purge(self, *, before_ms: int) -> int:
        """Drop the raw payload of events older than ``before_ms`` (the timeline keeps type, time, channel)."""
        with self.db.transaction() as c:
            return c.execute("UPDATE events SET payload = '{}' WHERE time_ms < ? AND payload <> '{}'",
                             (before_ms,)).rowcount

    # -- issue 12, erasure (H4) ---------------------------------------------------------
    def erase(self, records: list[str], *, erasure: ErasureRow, pseudonyms: list[str]) -> None:
        """Delete everything held of these records and keep the erasure and the pseudonyms of their
        identifiers (never the identifiers), so later events carrying them are recognised and dropped; the
        numbers phone changes took off them stay noted as theirs until the change, unreadable."""
        c, ids = self.db.conn(), records
        c.execute("INSERT OR IGNORE INTO erasures VALUES (?,?,?,?,?,?,?)",
                  (erasure.erasure_id, erasure.customer_id, json.dumps(list(erasure.records)), erasure.reason,
                   erasure.requested_by, erasure.requested_at, json.dumps(erasure.confirmed)))
        c.executemany("INSERT OR IGNORE INTO erased_identifiers VALUES (?,?)",
                      [(p, erasure.erasure_id) for p in pseudonyms])
        if not ids:
            return
        q = _in(ids)
        for table in ("identifiers", "events", "purchases", "refunds", "attributes", "parts", "complaint_stores",
                      "home_stores", "name_index"):
            c.execute(f"DELETE FROM {table} WHERE record_id IN ({q})", ids)
        # A number a phone change took off them stays noted as theirs until then (its keyed index, never the
        # number): their events from before the change are dropped, not given to the number's next holder.
        c.execute(f"UPDATE replaced_identifiers SET sealed = NULL WHERE record_id IN ({q})", ids)
        c.execute(f"DELETE FROM assignments WHERE customer_id IN ({q})", ids)
        c.execute(f"DELETE FROM records WHERE id IN ({q})", ids)
        c.execute(f"DELETE FROM merges WHERE survivor_id IN ({q}) OR merged_id IN ({q})", ids + ids)
        c.execute(f"DELETE FROM merge_blocks WHERE a IN ({q}) OR b IN ({q})", ids + ids)
        c.execute(f"DELETE FROM conflicts WHERE EXISTS (SELECT 1 FROM json_each(customer_ids) WHERE value IN ({q}))",
                  ids)

    def has_erasures(self) -> bool:
        """Whether anyone was ever erased (most batches need no pseudonym at all then)."""
        return self.db.conn().execute("SELECT 1 FROM erased_identifiers LIMIT 1").fetchone() is not None

    def erased(self, pseudonyms: list[str]) -> set[str]:
        """Which of these identifier pseudonyms belong to an erased customer."""
        out: set[str] = set()
        for chunk in _chunks(list(set(pseudonyms)), 500):
            rows = self.db.conn().execute(
                f"SELECT pseudonym FROM erased_identifiers WHERE pseudonym IN ({_in(chunk)})", chunk)
            out.update(r[0] for r in rows)
        return out

    def erasure(self, erasure_id: str) -> ErasureRow | None:
        """One erasure."""
        row = self.db.conn().execute("SELECT * FROM erasures WHERE erasure_id = ?", (erasure_id,)).fetchone()
        if row is None:
            return None
        return ErasureRow(row[0], row[1], tuple(json.loads(row[2])), row[3], row[4], row[5], json.loads(row[6]))

    def confirm_erasure(self, erasure_id: str, *, service: str, at: str) -> bool:
        """Note that ``service`` confirmed (the first confirmation's time is kept); False when unknown."""
        cur = self.db.conn().execute(
            "UPDATE erasures SET confirmed = json_set(confirmed, '$.' || ?, COALESCE(json_extract(confirmed,"
            " '$.' || ?), ?)) WHERE erasure_id = ?", (service, service, at, erasure_id))
        return cur.rowcount == 1
