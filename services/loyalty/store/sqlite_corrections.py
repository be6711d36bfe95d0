"""Loyalty's SQLite adapter, issue 14's staff corrections: tier overrides and adjustments awaiting approval.

A mixin of :class:`services.loyalty.store.sqlite.SqliteLoyaltyStore` (needs ``self.db``, ``self.keys`` and
the owners' ``owned_sql``); staff notes are sealed at rest as the ledger's are.
"""

from __future__ import annotations

from dataclasses import replace

from services.loyalty.store import ApprovalRow, TierOverrideRow, open_note, seal_note
from shared.storage.base import chunks
from shared.storage.base import in_placeholders as _in

CORRECTIONS_SQL = """
CREATE TABLE IF NOT EXISTS tier_overrides (
  override_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, tier TEXT NOT NULL, until TEXT NOT NULL,
  starts_at TEXT NOT NULL, ends_at TEXT NOT NULL, reason TEXT NOT NULL, by TEXT NOT NULL,
  lifted_at TEXT, lifted_by TEXT, lift_reason TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tier_overrides_customer ON tier_overrides(customer_id, starts_at);
CREATE TABLE IF NOT EXISTS approvals (
  approval_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, points INTEGER NOT NULL, reason TEXT NOT NULL,
  requested_by TEXT NOT NULL, requested_at TEXT NOT NULL, status TEXT NOT NULL, decided_by TEXT,
  decided_at TEXT, decision_reason TEXT, adjustment_id TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS approvals_status ON approvals(status, requested_at);
CREATE INDEX IF NOT EXISTS approvals_customer ON approvals(customer_id);
"""

_OVERRIDE_COLS = ("override_id, customer_id, tier, until, starts_at, ends_at, reason, by, lifted_at, lifted_by,"
                  " lift_reason")
_APPROVAL_COLS = ("approval_id, customer_id, points, reason, requested_by, requested_at, status, decided_by,"
                  " decided_at, decision_reason, adjustment_id")


class SqliteCorrections:
    """Tier overrides and approvals in the service's SQLite file (schema :data:`CORRECTIONS_SQL`)."""

    db: object
    keys: object

    def _override(self, row: tuple) -> TierOverrideRow:
        o = TierOverrideRow(*row)
        return replace(o, reason=open_note(self.keys, "override.reason", o.reason),  # type: ignore[arg-type]
                       lift_reason=open_note(self.keys, "override.lift_reason", o.lift_reason))

    def _approval(self, row: tuple) -> ApprovalRow:
        a = ApprovalRow(*row)
        return replace(a, reason=open_note(self.keys, "approval.reason", a.reason),  # type: ignore[arg-type]
                       decision_reason=open_note(self.keys, "approval.decision_reason", a.decision_reason))

    def add_tier_override(self, row: TierOverrideRow) -> None:
        """Keep a new tier override."""
        sealed = replace(row, reason=seal_note(self.keys, "override.reason", row.reason))  # type: ignore[arg-type]
        self.db.conn().execute(f"INSERT INTO tier_overrides({_OVERRIDE_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",  # type: ignore[attr-defined]
                               tuple(vars(sealed).values()))

    def tier_overrides_of(self, record_ids: list[str]) -> list[TierOverrideRow]:
        """Every tier override set on these records (lifted and ended ones too), oldest first."""
        out = []
        for ids in chunks(sorted(set(record_ids)), 500):  # a batch asks for all its customers' records at once
            out += [self._override(r) for r in self.db.conn().execute(  # type: ignore[attr-defined]
                f"SELECT {_OVERRIDE_COLS} FROM tier_overrides WHERE customer_id IN ({_in(ids)})", ids)]
        return sorted(out, key=lambda o: (o.starts_at, o.override_id))

    def lift_tier_override(self, override_id: str, *, at: str, by: str, reason: str) -> bool:
        """End an override at ``at``; False when it was lifted already or had ended by then."""
        cur = self.db.conn().execute(  # type: ignore[attr-defined]
            "UPDATE tier_overrides SET lifted_at = ?, lifted_by = ?, lift_reason = ?"
            " WHERE override_id = ? AND lifted_at IS NULL AND ends_at > ?",
            (at, by, seal_note(self.keys, "override.lift_reason", reason), override_id, at))  # type: ignore[arg-type]
        return cur.rowcount == 1

    def add_approval(self, row: ApprovalRow) -> None:
        """Keep a new adjustment request awaiting approval."""
        sealed = replace(row, reason=seal_note(self.keys, "approval.reason", row.reason))  # type: ignore[arg-type]
        self.db.conn().execute(f"INSERT INTO approvals({_APPROVAL_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",  # type: ignore[attr-defined]
                               tuple(vars(sealed).values()))

    def approval(self, approval_id: str) -> ApprovalRow | None:
        """One approval."""
        row = self.db.conn().execute(  # type: ignore[attr-defined]
            f"SELECT {_APPROVAL_COLS} FROM approvals WHERE approval_id = ?", (approval_id,)).fetchone()
        return self._approval(row) if row else None

    def approvals(self, *, status: str | None, stores: frozenset[str] | None, offset: int, limit: int,
                  records: list[str] | None = None) -> list[ApprovalRow]:
        """Approvals (with ``status``, if given; of customers owned by ``stores``, if given; asked through
        these ``records``, if given), oldest first."""
        where, args = ["1 = 1"], []
        if records is not None:
            where.append(f"customer_id IN ({_in(records)})")
            args += records
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if stores is not None:
            cond, more = self.owned_sql("customer_id", stores)  # type: ignore[attr-defined]
            where.append(cond)
            args += more
        rows = self.db.conn().execute(  # type: ignore[attr-defined]
            f"SELECT {_APPROVAL_COLS} FROM approvals WHERE {' AND '.join(where)}"
            " ORDER BY requested_at, approval_id LIMIT ? OFFSET ?", [*args, limit, offset])
        return [self._approval(r) for r in rows]

    def decide_approval(self, approval_id: str, *, status: str, by: str, at: str, reason: str,
                        adjustment_id: str | None) -> bool:
        """Approve or reject a pending approval; False (and no change) when it was decided already."""
        cur = self.db.conn().execute(  # type: ignore[attr-defined]
            "UPDATE approvals SET status = ?, decided_by = ?, decided_at = ?, decision_reason = ?, adjustment_id = ?"
            " WHERE approval_id = ? AND status = 'pending'",
            (status, by, at, seal_note(self.keys, "approval.decision_reason", reason), adjustment_id,  # type: ignore[arg-type]
             approval_id))
        return cur.rowcount == 1

    def erase_corrections(self, ids: list[str]) -> None:
        """An erased customer's overrides and approvals go (their notes may name the person)."""
        c = self.db.conn()  # type: ignore[attr-defined]
        c.execute(f"DELETE FROM tier_overrides WHERE customer_id IN ({_in(ids)})", ids)
        c.execute(f"DELETE FROM approvals WHERE customer_id IN ({_in(ids)})", ids)
