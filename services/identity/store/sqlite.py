"""Identity's embedded store: one SQLite file, WAL mode, shared safely by several workers."""

from __future__ import annotations

import json
from collections.abc import Iterable

from services.identity.domain.cleaning import Ident
from services.identity.domain.names import NameIndex
from services.identity.domain.resolution import Found
from services.identity.store import (
    ConflictRow,
    EventRow,
    IdentifierRow,
    MergeRow,
    NewRecord,
    RecordRow,
    StatsRow,
    default_name_key,
)
from services.identity.store.sqlite_corrections import CORRECTIONS_SQL, SqliteCorrections
from services.identity.store.sqlite_imports import IMPORTS_SQL, SqliteImports
from services.identity.store.sqlite_names import NAMES_SQL, SqliteNames
from services.identity.store.sqlite_privacy import SqlitePrivacy
from services.identity.store.sqlite_scope import SqliteScope
from services.identity.store.sqlite_tokens import TOKENS_SQL, SqliteTokens
from shared.contract.facts import FieldValue, PurchaseFact, RefundFact
from shared.storage import audit as audit_store
from shared.storage.base import OUTBOX_SQL
from shared.storage.base import chunks as _chunks
from shared.storage.base import in_placeholders as _in
from shared.storage.base import insert_rows as _insert_rows
from shared.storage.crypto import SERVICE
from shared.storage.fact_tables import ATTRIBUTES_SQL, compact_json, open_field, sqlite_put_attributes
from shared.storage.outbox import SqliteStore
from shared.storage.owners import OWNERS_SQL, SqliteOwners

# The timeline. Rows go in arrival order (a rowid table), its key in an index of its own; see
# ``_events_in_arrival_order``.
_EVENTS_SQL = """
CREATE TABLE IF NOT EXISTS events (
  source TEXT NOT NULL, id TEXT NOT NULL, record_id TEXT NOT NULL, type TEXT NOT NULL,
  channel TEXT NOT NULL, time TEXT NOT NULL, time_ms INTEGER NOT NULL, payload TEXT NOT NULL,
  ingested_at TEXT NOT NULL, PRIMARY KEY (source, id)
);
CREATE INDEX IF NOT EXISTS events_record_time ON events(record_id, time_ms, source, id);
"""

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS records (
  id TEXT PRIMARY KEY, root_id TEXT NOT NULL, merged_into TEXT, phone TEXT,
  created_at TEXT NOT NULL, updated_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_root ON records(root_id);
CREATE INDEX IF NOT EXISTS records_merged_into ON records(merged_into);
CREATE TABLE IF NOT EXISTS identifiers (
  type TEXT NOT NULL, value TEXT NOT NULL, record_id TEXT NOT NULL,
  first_seen TEXT NOT NULL, source TEXT NOT NULL, event_id TEXT NOT NULL, sealed TEXT,
  PRIMARY KEY (type, value)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS identifiers_record ON identifiers(record_id);
CREATE TABLE IF NOT EXISTS purchases (
  source TEXT NOT NULL, id TEXT NOT NULL, record_id TEXT NOT NULL, order_id TEXT NOT NULL,
  amount_minor INTEGER NOT NULL, store_id TEXT, time_ms INTEGER NOT NULL, day TEXT NOT NULL,
  PRIMARY KEY (source, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS purchases_record ON purchases(record_id);
CREATE TABLE IF NOT EXISTS refunds (
  source TEXT NOT NULL, id TEXT NOT NULL, record_id TEXT NOT NULL, order_id TEXT NOT NULL,
  amount_minor INTEGER NOT NULL, time_ms INTEGER NOT NULL, PRIMARY KEY (source, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS refunds_record ON refunds(record_id);
CREATE TABLE IF NOT EXISTS complaint_stores (
  record_id TEXT PRIMARY KEY, store_id TEXT NOT NULL, time_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS merges (
  merge_id TEXT PRIMARY KEY, survivor_id TEXT NOT NULL, merged_id TEXT NOT NULL, cause TEXT NOT NULL,
  at TEXT NOT NULL, undone_at TEXT, undone_by TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS merges_survivor ON merges(survivor_id);
CREATE INDEX IF NOT EXISTS merges_merged ON merges(merged_id);
CREATE TABLE IF NOT EXISTS merge_blocks (a TEXT NOT NULL, b TEXT NOT NULL, PRIMARY KEY (a, b)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS conflicts (
  conflict_id TEXT PRIMARY KEY, kind TEXT NOT NULL, identifier_type TEXT NOT NULL,
  identifier_pseudonym TEXT NOT NULL, customer_ids TEXT NOT NULL, source TEXT NOT NULL,
  event_id TEXT NOT NULL, at TEXT NOT NULL, status TEXT NOT NULL, resolved_by TEXT, note TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS parts (
  record_id TEXT NOT NULL, part TEXT NOT NULL, value TEXT NOT NULL, version TEXT NOT NULL,
  PRIMARY KEY (record_id, part)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS erasures (
  erasure_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, records TEXT NOT NULL, reason TEXT NOT NULL,
  requested_by TEXT NOT NULL, requested_at TEXT NOT NULL, confirmed TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS erased_identifiers (pseudonym TEXT PRIMARY KEY, erasure_id TEXT NOT NULL) WITHOUT ROWID;
"""
    + ATTRIBUTES_SQL
    + OUTBOX_SQL
    + audit_store.AUDIT_SQL
    + OWNERS_SQL
    + CORRECTIONS_SQL
    + _EVENTS_SQL
    + IMPORTS_SQL
    + NAMES_SQL
    + TOKENS_SQL
    # One-off data migrations done on this file (issue 12, scope gaps: the complaint stores of older complaints).
    + "CREATE TABLE IF NOT EXISTS backfills (name TEXT PRIMARY KEY, at TEXT NOT NULL) WITHOUT ROWID;\n"
)


class SqliteIdentityStore(SqliteStore, SqliteOwners, SqlitePrivacy, SqliteScope, SqliteCorrections, SqliteImports,
                          SqliteNames, SqliteTokens):
    """Identity data in SQLite; every write method runs inside the caller's transaction."""

    schema = SCHEMA

    def __init__(self, path, *, name_key: bytes | None = None, **options) -> None:
        super().__init__(path, **options)
        self.names = NameIndex(name_key or default_name_key())
        self._seal_identifiers_of_older_files()
        self._events_in_arrival_order()

    def _events_in_arrival_order(self) -> None:
        # Issue 14: events were a table clustered on (source, id) (WITHOUT ROWID). Ids fall anywhere in that order
        # and each row carries its sealed payload, so every batch split and rewrote leaves all over the table: the
        # timeline's INSERT and the commit were about a sixth of identity's CPU on an import. An older file's
        # table is rebuilt once, the same rows, under the write lock (a second worker then finds it done).
        c = self.db.conn()
        if not _clustered_events(c):
            return
        with self.db.transaction():
            if not _clustered_events(c):
                return
            c.execute("ALTER TABLE events RENAME TO events_clustered")
            c.execute("DROP INDEX events_record_time")  # renamed with its table: the name is the new table's
            for statement in _EVENTS_SQL.split(";"):  # executescript would commit the transaction
                if statement.strip():
                    c.execute(statement)
            c.execute("INSERT INTO events SELECT * FROM events_clustered")
            c.execute("DROP TABLE events_clustered")
        # That one transaction wrote the table over (and zeroed the old one's pages) in the write-ahead log, which
        # SQLite reuses but never shrinks: emptied now, or it stays on disk at several times the table's size.
        # Best effort: a reader holding the log leaves it as it is.
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()

    # -- writes -------------------------------------------------------------------------
    def event_seen(self, source: str, event_id: str) -> bool:
        """Whether ``(source, id)`` was processed before."""
        q = "SELECT 1 FROM events WHERE source = ? AND id = ?"
        return self.db.conn().execute(q, (source, event_id)).fetchone() is not None

    def seen(self, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which ``(source, id)`` pairs were processed before (one query for a batch)."""
        out: set[tuple[str, str]] = set()
        c = self.db.conn()
        # Every source of the batch in one statement (one per source was about three a batch of ten, issue 13):
        # the pairs as a table joined on the key. A chunk is padded to a power of two of pairs with its last
        # pair again (a repeat finds what the pair found), so a few texts stay prepared whatever the batch size.
        for chunk in _chunks(list(dict.fromkeys(keys)), 256):
            size = 1 << (len(chunk) - 1).bit_length()
            padded = chunk + [chunk[-1]] * (size - len(chunk))
            out.update(c.execute(
                f"WITH wanted(source, id) AS (VALUES {','.join(['(?,?)'] * size)})"
                " SELECT e.source, e.id FROM wanted JOIN events e ON e.source = wanted.source AND e.id = wanted.id",
                [v for key in padded for v in key]))
        return out

    def find(self, idents: Iterable[Ident]) -> dict[Ident, Found]:
        """Where each known identifier points (one query per 400 identifiers)."""
        wanted = list(idents)
        if not wanted:
            return {}
        # Identifiers are held by their keyed pseudonym (the value itself is sealed): look that up.
        by_index = {(t, self.keys.index(t, v)): (t, v) for t, v in wanted}
        out: dict[Ident, Found] = {}
        # A batch's identifiers in a few statements: the wanted pairs as a table joined on the primary key
        # (a UNION ALL of one lookup each was several times slower to prepare and run).
        for chunk in _chunks(list(by_index), 400):
            rows = self.db.conn().execute(
                f"WITH wanted(type, value) AS (VALUES {','.join(['(?,?)'] * len(chunk))})"
                " SELECT i.type, i.value, i.record_id, r.root_id, root.phone IS NOT NULL FROM wanted"
                " JOIN identifiers i ON i.type = wanted.type AND i.value = wanted.value"
                " JOIN records r ON r.id = i.record_id JOIN records root ON root.id = r.root_id",
                [v for key in chunk for v in key])
            out.update((by_index[(t, ix)], Found(rec, root, bool(has_phone))) for t, ix, rec, root, has_phone in rows)
        return out

    def blocked_pairs(self, root_ids: Iterable[str]) -> set[frozenset[str]]:
        """Pairs of these customers that hold records an unmerge separated, so they are not merged again
        automatically (also after a separated record joined another customer)."""
        ids = list(set(root_ids))
        if len(ids) < 2:
            return set()
        rows = self.db.conn().execute(
            f"SELECT ra.root_id, rb.root_id FROM records ra JOIN merge_blocks mb ON mb.a = ra.id"
            f" JOIN records rb ON rb.id = mb.b WHERE ra.root_id IN ({_in(ids)}) AND rb.root_id IN ({_in(ids)})"
            " AND ra.root_id != rb.root_id",
            ids + ids,
        )
        return {frozenset(r) for r in rows}

    def create_record(self, record_id: str, *, phone: str | None, at: str) -> None:
        """A new customer record (no-op if it exists)."""
        self.create_records([NewRecord(record_id, phone, at)])

    def create_records(self, rows: list[NewRecord]) -> None:
        """New customer records, in order (each a no-op if it exists); their data keys made in one go."""
        self.keys.prepare(r.id for r in rows)
        self.db.conn().executemany(
            "INSERT OR IGNORE INTO records(id, root_id, merged_into, phone, created_at, updated_at)"
            " VALUES (?,?,NULL,?,?,?)",
            [(r.id, r.id, self.keys.seal(r.id, "records.phone", r.phone), r.at, r.at) for r in rows],
        )

    def link(self, record_id: str, idents: list[Ident], *, source: str, event_id: str, at: str) -> None:
        """Attach identifiers to a record; a known one keeps its record and its earliest sighting."""
        self.link_all([(record_id, idents, source, event_id, at)])

    def link_all(self, links: list[tuple[str, list[Ident], str, str, str]]) -> None:
        """``link`` for each (record, identifiers, source, event id, at) in turn, in a few statements."""
        rows = [(t, self.keys.index(t, v), record_id, at, source, event_id,
                 self.keys.seal(record_id, f"identifiers.{t}", v))
                for record_id, idents, source, event_id, at in links for t, v in idents]
        _insert_rows(self.db.conn(), "INSERT INTO identifiers(type, value, record_id, first_seen, source, event_id,"
                     " sealed)", rows, " ON CONFLICT(type, value) DO UPDATE SET first_seen = excluded.first_seen,"
                     " source = excluded.source, event_id = excluded.event_id WHERE excluded.record_id ="
                     " identifiers.record_id AND excluded.first_seen < identifiers.first_seen")

    def merge(self, survivor_id: str, merged_id: str, *, merge_id: str, cause: dict, at: str) -> list[str]:
        """Put ``merged_id`` and everything under it beneath ``survivor_id``; returns the records moved."""
        c = self.db.conn()
        moved = [r[0] for r in c.execute("SELECT id FROM records WHERE root_id = ? ORDER BY id", (merged_id,))]
        c.execute("UPDATE records SET merged_into = ?, updated_at = ? WHERE id = ?", (survivor_id, at, merged_id))
        c.execute("UPDATE records SET root_id = ? WHERE root_id = ?", (survivor_id, merged_id))
        c.execute(
            "INSERT OR IGNORE INTO merges(merge_id, survivor_id, merged_id, cause, at) VALUES (?,?,?,?,?)",
            (merge_id, survivor_id, merged_id, compact_json(cause), at),
        )
        return moved

    def unmerge(self, merge_id: str, *, by: str, at: str) -> list[str]:
        """Give the merged record and the records under it their own customer again."""
        c = self.db.conn()
        m = self.merge_row(merge_id)
        assert m is not None and m.undone_at is None
        subtree = [
            r[0]
            for r in c.execute(
                "WITH RECURSIVE sub(id) AS (SELECT ? UNION SELECT r.id FROM records r JOIN sub"
                " ON r.merged_into = sub.id) SELECT id FROM sub",
                (m.merged_id,),
            )
        ]
        c.executemany("UPDATE records SET root_id = ? WHERE id = ?", [(m.merged_id, r) for r in subtree])
        c.execute("UPDATE records SET merged_into = NULL, updated_at = ? WHERE id = ?", (at, m.merged_id))
        c.execute("UPDATE records SET updated_at = ? WHERE id = ?", (at, m.survivor_id))
        c.execute("UPDATE merges SET undone_at = ?, undone_by = ? WHERE merge_id = ?", (at, by, merge_id))
        a, b = sorted((m.survivor_id, m.merged_id))
        c.executemany("INSERT OR IGNORE INTO merge_blocks(a, b) VALUES (?,?)", [(a, b), (b, a)])
        return subtree

    def add_conflict(self, conflict: ConflictRow) -> None:
        """Record a conflict for review (once per id)."""
        self.db.conn().execute(
            "INSERT OR IGNORE INTO conflicts VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (conflict.conflict_id, conflict.kind, conflict.identifier_type, conflict.identifier_pseudonym,
             json.dumps(list(conflict.customer_ids)), conflict.source, conflict.event_id, conflict.at,
             conflict.status, conflict.resolved_by, self.keys.seal(SERVICE, "conflicts.note", conflict.note)),
        )

    def add_events(self, rows: list[EventRow]) -> None:
        """Keep events for the timeline (marks them processed)."""
        self.keys.prepare(r.record_id for r in rows)
        _insert_rows(self.db.conn(), "INSERT INTO events", [
            (r.source, r.id, r.record_id, r.type, r.channel, r.time, r.time_ms,
             self.keys.seal(r.record_id, "events.payload", r.payload), r.ingested_at) for r in rows])

    def add_purchases(self, rows: list[PurchaseFact]) -> None:
        """Purchase facts."""
        _insert_rows(self.db.conn(), "INSERT OR IGNORE INTO purchases", [
            (r.source, r.id, r.record_id, r.order_id, r.amount_minor, r.store_id, r.time_ms, r.day) for r in rows])

    def add_refunds(self, rows: list[RefundFact]) -> None:
        """Refund facts."""
        _insert_rows(self.db.conn(), "INSERT OR IGNORE INTO refunds",
                     [(r.source, r.id, r.record_id, r.order_id, r.amount_minor, r.time_ms) for r in rows])

    def put_attributes(self, values: list[tuple[str, list[FieldValue]]]) -> None:
        """Set fields of records where the value is newer than the one held; a name's index entry with it."""
        sqlite_put_attributes(self.db.conn(), values, keys=self.keys)
        self._index_names(values)

    def touch(self, record_id: str, *, at: str) -> None:
        """Note that a customer changed."""
        self.db.conn().execute("UPDATE records SET updated_at = max(updated_at, ?) WHERE id = ?", (at, record_id))

    def touch_all(self, record_ids: list[str], *, at: str) -> None:
        """Note that these customers changed, in one statement (a batch's, issue 13)."""
        if record_ids:
            self.db.conn().execute("UPDATE records SET updated_at = max(updated_at, ?)"
                                   " WHERE id IN (SELECT value FROM json_each(?))", (at, json.dumps(record_ids)))

    # -- reads --------------------------------------------------------------------------
    def record(self, record_id: str) -> RecordRow | None:
        """One record."""
        row = self.db.conn().execute("SELECT * FROM records WHERE id = ?", (record_id,)).fetchone()
        if not row:
            return None
        return RecordRow(row[0], row[1], row[2], self.keys.open(row[0], "records.phone", row[3]), *row[4:])

    def group(self, root_id: str) -> list[str]:
        """The records that make up a customer."""
        rows = self.db.conn().execute("SELECT id FROM records WHERE root_id = ? ORDER BY id", (root_id,))
        return [r[0] for r in rows]

    def identifiers(self, record_ids: list[str]) -> list[IdentifierRow]:
        """Identifiers of these records, oldest first."""
        rows = self.db.conn().execute(
            f"SELECT type, sealed, record_id, first_seen, source, event_id FROM identifiers"
            f" WHERE record_id IN ({_in(record_ids)})",
            record_ids,
        )
        out = [IdentifierRow(t, self.keys.open(rec, f"identifiers.{t}", v), rec, first, src, eid)
               for t, v, rec, first, src, eid in rows]
        # Sorted once opened: the stored value is a pseudonym, whose order means nothing.
        return sorted((r for r in out if r.value is not None), key=lambda r: (r.first_seen, r.type, r.value))

    def attributes(self, record_ids: list[str]) -> list[FieldValue]:
        """Every field value held by these records."""
        rows = self.db.conn().execute(
            f"SELECT record_id, field, value, time_ms, source, event_id FROM attributes"
            f" WHERE record_id IN ({_in(record_ids)})",
            record_ids,
        )
        return [FieldValue(f, open_field(self.keys, rec, f, v), t, s, e) for rec, f, v, t, s, e in rows]

    def stats(self, record_ids: list[str]) -> StatsRow:
        """Purchase and refund figures over these records, from the facts themselves."""
        c, ids = self.db.conn(), record_ids
        n, spend, first, last, days = c.execute(
            f"SELECT COUNT(*), COALESCE(SUM(amount_minor), 0), MIN(time_ms), MAX(time_ms), COUNT(DISTINCT day)"
            f" FROM purchases WHERE record_id IN ({_in(ids)})",
            ids,
        ).fetchone()
        refunds = c.execute(
            f"SELECT COALESCE(SUM(amount_minor), 0) FROM refunds WHERE record_id IN ({_in(ids)})", ids
        ).fetchone()[0]
        stores = c.execute(
            f"SELECT store_id, COUNT(DISTINCT day), MAX(day) FROM purchases WHERE record_id IN ({_in(ids)})"
            " AND store_id IS NOT NULL GROUP BY store_id",
            ids,
        ).fetchall()
        return StatsRow(n, days, spend, refunds, first, last, [tuple(s) for s in stores])

    def timeline(self, record_ids: list[str], *, before: tuple[int, str, str] | None, limit: int) -> list[EventRow]:
        """Events of these records, newest first, after a keyset cursor."""
        args: list = list(record_ids)
        cond = ""
        if before is not None:
            cond = " AND (time_ms, source, id) < (?, ?, ?)"
            args += list(before)
        rows = self.db.conn().execute(
            f"SELECT source, id, record_id, type, channel, time, time_ms, payload, ingested_at FROM events"
            f" WHERE record_id IN ({_in(record_ids)}){cond} ORDER BY time_ms DESC, source DESC, id DESC LIMIT ?",
            [*args, limit],
        )
        return [EventRow(*r[:7], self.keys.open(r[2], "events.payload", r[7]) or "{}", r[8]) for r in rows]

    def merges(self, record_ids: list[str]) -> list[MergeRow]:
        """Merges that involved any of these records, newest first."""
        rows = self.db.conn().execute(
            f"SELECT merge_id, survivor_id, merged_id, cause, at, undone_at, undone_by FROM merges"
            f" WHERE survivor_id IN ({_in(record_ids)}) OR merged_id IN ({_in(record_ids)}) ORDER BY at DESC, merge_id",
            record_ids + record_ids,
        )
        return [MergeRow(m, s, d, json.loads(c), a, u, b) for m, s, d, c, a, u, b in rows]

    def merge_row(self, merge_id: str) -> MergeRow | None:
        """One merge."""
        row = self.db.conn().execute(
            "SELECT merge_id, survivor_id, merged_id, cause, at, undone_at, undone_by FROM merges WHERE merge_id = ?",
            (merge_id,),
        ).fetchone()
        return MergeRow(row[0], row[1], row[2], json.loads(row[3]), *row[4:]) if row else None

    def conflicts(self, *, status: str | None, customer_id: str | None, offset: int, limit: int) -> list[ConflictRow]:
        """Identity conflicts for review, newest first."""
        conds, args = [], []
        if status:
            conds.append("status = ?")
            args.append(status)
        if customer_id:
            conds.append("EXISTS (SELECT 1 FROM json_each(customer_ids) WHERE value = ?)")
            args.append(customer_id)
        where = f"WHERE {' AND '.join(conds)}" if conds else ""
        rows = self.db.conn().execute(
            f"SELECT * FROM conflicts {where} ORDER BY at DESC, conflict_id LIMIT ? OFFSET ?", [*args, limit, offset]
        )
        # The staff note is free text: sealed under the service's key.
        return [
            ConflictRow(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), *r[5:10],
                        self.keys.open(SERVICE, "conflicts.note", r[10])) for r in rows
        ]

    def set_conflict_status(self, conflict_id: str, *, status: str, by: str, note: str | None) -> bool:
        """Close a conflict; False when it does not exist."""
        cur = self.db.conn().execute(
            "UPDATE conflicts SET status = ?, resolved_by = ?, note = ? WHERE conflict_id = ?",
            (status, by, self.keys.seal(SERVICE, "conflicts.note", note), conflict_id),
        )
        return cur.rowcount == 1

    def customer_count(self) -> int:
        """How many active customers there are."""
        return self.db.conn().execute("SELECT COUNT(*) FROM records WHERE root_id = id").fetchone()[0]

    def put_part(self, customer_id: str, part: str, value: dict, *, version: str) -> None:
        """Another service's part of a customer's view, kept if newer than what is held."""
        self.put_parts([(customer_id, part, value, version)])

    def put_parts(self, parts: list[tuple[str, str, dict, str]]) -> None:
        """Parts (customer, part, value, version) as ``put_part`` would keep them one after another."""
        _insert_rows(self.db.conn(), "INSERT INTO parts",
                     [(customer_id, part, compact_json(value), version) for customer_id, part, value, version in parts],
                     " ON CONFLICT(record_id, part) DO UPDATE SET value = excluded.value, version = excluded.version"
                     " WHERE excluded.version >= parts.version")

    def parts(self, record_ids: list[str]) -> dict[str, list[dict]]:
        """Other services' parts held for these records, by part name."""
        out: dict[str, list[dict]] = {}
        rows = self.db.conn().execute(
            f"SELECT part, value FROM parts WHERE record_id IN ({_in(record_ids)}) ORDER BY record_id", record_ids
        )
        for part, value in rows:
            out.setdefault(part, []).append(json.loads(value))
        return out

    # Issue 12, access (H1).
    def store_ids_seen(self) -> set[str]:
        """Every store id a purchase named (a scan: read for GET /v1/stores only, kept off the ingest path)."""
        rows = self.db.conn().execute("SELECT DISTINCT store_id FROM purchases WHERE store_id IS NOT NULL")
        return {r[0] for r in rows}


def _clustered_events(c) -> bool:
    """Whether this file's events table is still the one clustered on its key (before issue 14)."""
    row = c.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'").fetchone()
    return row is not None and "WITHOUT ROWID" in row[0].upper()
