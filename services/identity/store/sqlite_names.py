"""Identity's SQLite adapter, issue 16's search by name: the blind index of each record's name, kept in the
same call as the name (a private mixin of the adapter)."""

from __future__ import annotations

from services.identity.domain.names import NameIndex
from shared.contract.facts import FieldValue
from shared.storage.fact_tables import open_field

# One row per record that ever had a name: the HMAC of its newest name (NULL once it is cleared) and that
# name's order, so the index follows the ``attributes`` row exactly whatever order values arrive in.
NAMES_SQL = """
CREATE TABLE IF NOT EXISTS name_index (
  record_id TEXT PRIMARY KEY, digest TEXT, time_ms INTEGER NOT NULL, source TEXT NOT NULL, event_id TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS name_index_digest ON name_index(digest);
"""

_PUT_NAME = (
    "INSERT INTO name_index VALUES (?,?,?,?,?) ON CONFLICT(record_id) DO UPDATE SET digest = excluded.digest,"
    " time_ms = excluded.time_ms, source = excluded.source, event_id = excluded.event_id"
    " WHERE (excluded.time_ms, excluded.source, excluded.event_id)"
    " > (name_index.time_ms, name_index.source, name_index.event_id)"
)
NAME_BACKFILL = "name_index"


def name_rows(names: NameIndex, values: list[tuple[str, list[FieldValue]]]) -> list[tuple]:
    """The index rows of the names among these field values (both adapters keep the same)."""
    return [(record_id, names.digest(v.value), v.time_ms, v.source, v.event_id)
            for record_id, vs in values for v in vs if v.field == "name"]


class SqliteNames:
    """Mixed into the sqlite adapter; uses the adapter's database, keyring, scope filter and ``self.names``."""

    names: NameIndex

    def _index_names(self, values: list[tuple[str, list[FieldValue]]]) -> None:
        # Called by put_attributes with the same values: newest wins here exactly as in ``attributes``.
        rows = name_rows(self.names, values)
        if rows:
            self.db.conn().executemany(_PUT_NAME, rows)

    def customers_named(self, name: str, *, stores: frozenset[str] | None, offset: int, limit: int) -> list[str]:
        """The active customers one of whose records is named ``name`` now (compared in normal form), by id;
        with ``stores``, only customers one of them owns (filtered in the query, so pages stay whole)."""
        digest = self.names.digest(name)
        if digest is None:
            return []
        conds, args = ["n.digest = ?"], [digest]
        if stores is not None:
            cond, owned = self.owned_sql("r.root_id", stores, via_memberships=False)
            conds.append(cond)
            args += owned
        rows = self.db.conn().execute(
            "SELECT DISTINCT r.root_id FROM name_index n JOIN records r ON r.id = n.record_id"
            f" WHERE {' AND '.join(conds)} ORDER BY r.root_id LIMIT ? OFFSET ?", [*args, limit, offset])
        return [r[0] for r in rows]

    def rebuild_name_index(self, *, at: str) -> bool:
        """Once per key (in the caller's transaction): the index rebuilt from every record's sealed name, for
        names kept before the index existed or under another key; False when it was built with this key."""
        c, done = self.db.conn(), f"{NAME_BACKFILL}:{self.names.fingerprint()}"
        if c.execute("SELECT 1 FROM backfills WHERE name = ?", (done,)).fetchone():
            return False
        found = c.execute("SELECT record_id, value, time_ms, source, event_id FROM attributes"
                          " WHERE field = 'name'").fetchall()
        self.keys.load(r for r, *_ in found)
        c.execute("DELETE FROM name_index")
        c.executemany("INSERT INTO name_index VALUES (?,?,?,?,?)", [
            (r, self.names.digest(open_field(self.keys, r, "name", v)), t, s, e) for r, v, t, s, e in found])
        c.execute(f"DELETE FROM backfills WHERE name LIKE '{NAME_BACKFILL}:%'")
        c.execute("INSERT INTO backfills VALUES (?, ?)", (done, at))
        return True
