"""Loyalty's SQLite adapter, issue 14's member-import facts: opening lots (ledger movements posted once) and
imported tiers (a private mixin of the adapter)."""

from __future__ import annotations

import sqlite3

from services.loyalty.domain.model import Entry, TierImport
from services.loyalty.store import seal_cause
from services.loyalty.store.sqlite_reads import compact_json
from shared.clock import iso_utc, parse_iso
from shared.storage.base import chunks as _chunks
from shared.storage.base import in_placeholders as _in

IMPORTS_SQL = """
CREATE TABLE IF NOT EXISTS tier_imports (
  source TEXT NOT NULL, id TEXT NOT NULL, record_id TEXT NOT NULL, tier TEXT NOT NULL, since TEXT NOT NULL,
  imported_at TEXT, PRIMARY KEY (source, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tier_imports_record ON tier_imports(record_id);
"""


class SqliteImports:
    """Mixed into the sqlite adapter; uses the adapter's database and keyring."""

    def add_import_columns(self) -> None:
        """Add ``tier_imports.imported_at`` to a file made before it (its rows read as imported at ``since``)."""
        c = self.db.conn()
        if "imported_at" not in {r[1] for r in c.execute("PRAGMA table_info(tier_imports)")}:
            try:
                c.execute("ALTER TABLE tier_imports ADD COLUMN imported_at TEXT")
            except sqlite3.OperationalError as exc:  # another worker added it first
                if "duplicate column" not in str(exc):
                    raise

    def add_openings(self, entries: list[Entry]) -> list[Entry]:
        """Post opening lots not posted before (by entry id); returns those posted now."""
        c, fresh, seen = self.db.conn(), [], set()
        held: set[str] = set()
        ids = [e.entry_id for e in entries]
        for part in _chunks(ids, 500):
            held.update(r for (r,) in c.execute(f"SELECT entry_id FROM ledger WHERE entry_id IN ({_in(part)})", part))
        for e in entries:
            if e.entry_id not in held and e.entry_id not in seen:
                seen.add(e.entry_id)
                fresh.append(e)
        c.executemany(
            "INSERT INTO ledger(entry_id, record_id, bucket, rule, kind, points, effective_at, posted_at, cause)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            [(e.entry_id, e.record_id, e.bucket, e.rule, e.kind, e.points, e.effective_at, e.posted_at,
              compact_json(seal_cause(e.cause, self.keys))) for e in fresh])
        return fresh

    def add_tier_imports(self, rows: list[TierImport]) -> list[TierImport]:
        """Keep imported tiers not kept before (by source and id); returns those kept now."""
        c, fresh = self.db.conn(), []
        for r in rows:
            cur = c.execute("INSERT OR IGNORE INTO tier_imports(source, id, record_id, tier, since, imported_at)"
                            " VALUES (?,?,?,?,?,?)", (r.source, r.id, r.record_id, r.tier, iso_utc(r.since),
                                                      iso_utc(r.imported_at) if r.imported_at else None))
            if cur.rowcount:
                fresh.append(r)
        return fresh

    def tier_imports_of(self, record_ids: list[str]) -> list[TierImport]:
        """The imported tiers of these records."""
        out = []
        for part in _chunks(sorted(set(record_ids)), 500):
            rows = self.db.conn().execute(
                f"SELECT source, id, record_id, tier, since, imported_at FROM tier_imports"
                f" WHERE record_id IN ({_in(part)})", part)
            out += [TierImport(s, i, r, t, parse_iso(since), parse_iso(at) if at else None)
                    for s, i, r, t, since, at in rows]
        return sorted(out, key=lambda t: (t.since, t.source, t.id))
