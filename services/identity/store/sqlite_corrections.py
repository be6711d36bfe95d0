"""Identity's SQLite adapter, issue 14's staff-correction operations: identifiers a phone change replaced
(kept for the history, never found again) and the store or account manager staff assigned a customer to
(a private mixin of the adapter)."""

from __future__ import annotations

from services.identity.domain.cleaning import Ident
from services.identity.store import AssignmentRow, ReplacedIdentifierRow
from shared.storage.base import chunks as _chunks
from shared.storage.base import in_placeholders as _in

CORRECTIONS_SQL = """
CREATE TABLE IF NOT EXISTS replaced_identifiers (
  change_id TEXT NOT NULL, type TEXT NOT NULL, value TEXT NOT NULL, record_id TEXT NOT NULL,
  first_seen TEXT NOT NULL, source TEXT NOT NULL, event_id TEXT NOT NULL, sealed TEXT,
  replaced_at TEXT NOT NULL, replaced_by TEXT NOT NULL, PRIMARY KEY (change_id, type, value)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS replaced_identifiers_value ON replaced_identifiers(type, value);
CREATE INDEX IF NOT EXISTS replaced_identifiers_record ON replaced_identifiers(record_id);
CREATE TABLE IF NOT EXISTS assignments (
  customer_id TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL, by TEXT NOT NULL, at TEXT NOT NULL,
  PRIMARY KEY (customer_id, kind)
) WITHOUT ROWID;
"""


class SqliteCorrections:
    """Mixed into the sqlite adapter; uses the adapter's database and keyring."""

    def replace_identifier(self, ident: Ident, *, change_id: str, by: str, at: str) -> bool:
        """Move a held identifier into the history (it links nothing from now on); False when nobody holds it."""
        c, (kind, value) = self.db.conn(), ident
        index = self.keys.index(kind, value)
        cur = c.execute(
            "INSERT INTO replaced_identifiers SELECT ?, type, value, record_id, first_seen, source, event_id, sealed,"
            " ?, ? FROM identifiers WHERE type = ? AND value = ?", (change_id, at, by, kind, index))
        if cur.rowcount != 1:
            return False
        c.execute("DELETE FROM identifiers WHERE type = ? AND value = ?", (kind, index))
        return True

    def set_phone(self, record_id: str, *, phone: str, at: str) -> None:
        """The phone a record (an active customer) is known by now."""
        self.db.conn().execute("UPDATE records SET phone = ?, updated_at = max(updated_at, ?) WHERE id = ?",
                               (self.keys.seal(record_id, "records.phone", phone), at, record_id))

    def replaced_identifiers(self, record_ids: list[str]) -> list[ReplacedIdentifierRow]:
        """The identifiers phone changes took off these records, oldest replacement first."""
        rows = self.db.conn().execute(
            "SELECT type, sealed, record_id, first_seen, source, event_id, replaced_at, replaced_by, change_id"
            f" FROM replaced_identifiers WHERE record_id IN ({_in(record_ids)})", record_ids)
        out = [ReplacedIdentifierRow(t, self.keys.open(rec, f"identifiers.{t}", v), rec, *rest)
               for t, v, rec, *rest in rows]
        return sorted((r for r in out if r.value is not None), key=lambda r: (r.replaced_at, r.change_id))

    def has_replaced_identifiers(self) -> bool:
        """Whether a phone change ever replaced an identifier (most batches need no extra read then)."""
        return self.db.conn().execute("SELECT 1 FROM replaced_identifiers LIMIT 1").fetchone() is not None

    def replacements(self, idents: list[Ident]) -> dict[Ident, list[tuple[str, str]]]:
        """When each of these identifiers was replaced and on which record, oldest first (only those replaced)."""
        by_index = {(t, self.keys.index(t, v)): (t, v) for t, v in dict.fromkeys(idents)}
        out: dict[Ident, list[tuple[str, str]]] = {}
        for chunk in _chunks(list(by_index), 400):
            rows = self.db.conn().execute(
                f"WITH wanted(type, value) AS (VALUES {','.join(['(?,?)'] * len(chunk))})"
                " SELECT r.type, r.value, r.replaced_at, r.record_id, r.change_id FROM wanted"
                " JOIN replaced_identifiers r ON r.type = wanted.type AND r.value = wanted.value",
                [v for key in chunk for v in key])
            for t, ix, at, record, _change in sorted(rows, key=lambda row: (row[2], row[4])):
                out.setdefault(by_index[(t, ix)], []).append((at, record))
        return out

    def put_assignment(self, row: AssignmentRow) -> None:
        """Assign a customer to a store or an account manager (replacing the one of that kind held)."""
        self.db.conn().execute(
            "INSERT INTO assignments VALUES (?,?,?,?,?) ON CONFLICT(customer_id, kind) DO UPDATE SET"
            " value = excluded.value, by = excluded.by, at = excluded.at",
            (row.customer_id, row.kind, row.value, row.by, row.at))

    def remove_assignment(self, customer_id: str, *, kind: str) -> bool:
        """End a customer's assignment of this kind; False when there was none."""
        cur = self.db.conn().execute("DELETE FROM assignments WHERE customer_id = ? AND kind = ?",
                                     (customer_id, kind))
        return cur.rowcount == 1

    def assignments_of(self, customer_ids: list[str]) -> dict[str, dict[str, AssignmentRow]]:
        """Per customer that has any, its assignments by kind."""
        out: dict[str, dict[str, AssignmentRow]] = {}
        for chunk in _chunks(list(dict.fromkeys(customer_ids)), 500):
            rows = self.db.conn().execute(
                f"SELECT customer_id, kind, value, by, at FROM assignments WHERE customer_id IN ({_in(chunk)})", chunk)
            for row in rows:
                out.setdefault(row[0], {})[row[1]] = AssignmentRow(*row)
        return out

    def assigned_to(self, kind: str, value: str, *, stores: frozenset[str] | None, offset: int,
                    limit: int) -> list[AssignmentRow]:
        """The active customers assigned to ``value`` (e.g. one account manager), newest assignment first; with
        ``stores``, only customers one of them owns (filtered in the query, so pages stay whole)."""
        conds, args = ["a.kind = ?", "a.value = ?"], [kind, value]
        if stores is not None:
            cond, owned = self.owned_sql("a.customer_id", stores, via_memberships=False)
            conds.append(cond)
            args += owned
        rows = self.db.conn().execute(
            "SELECT a.customer_id, a.kind, a.value, a.by, a.at FROM assignments a"
            " JOIN records r ON r.id = a.customer_id AND r.root_id = r.id"  # a merged-away customer's waits
            f" WHERE {' AND '.join(conds)} ORDER BY a.at DESC, a.customer_id LIMIT ? OFFSET ?", [*args, limit, offset])
        return [AssignmentRow(*row) for row in rows]
