"""The attendance sheet's aggregate in SQLite (issue 15): one row per record, store, day and sitting, kept by
triggers on the inserts of its facts, so a duplicate (an ignored insert) never counts and a batch counts whole
or not at all, in the caller's transaction."""

from __future__ import annotations

from datetime import date

from services.alerts.reports.attendance import SittingFact, SittingRow, pick_tiers
from shared.contract.facts import RefundFact
from shared.storage.base import in_placeholders as _in

# The largest of two party sizes, either of which may be missing.
_MAX_COVERS = ("CASE WHEN covers IS NULL THEN excluded.covers WHEN excluded.covers IS NULL THEN covers"
               " ELSE max(covers, excluded.covers) END")

ATTENDANCE_SQL = f"""
CREATE TABLE IF NOT EXISTS attendance_purchases (
  source TEXT NOT NULL, id TEXT NOT NULL, order_id TEXT NOT NULL, record_id TEXT NOT NULL, store_id TEXT NOT NULL,
  day TEXT NOT NULL, sitting TEXT NOT NULL, amount_minor INTEGER NOT NULL, covers INTEGER, PRIMARY KEY (source, id)
);  -- with a rowid: the order purchases arrived in decides which one takes an order's refunds
CREATE INDEX IF NOT EXISTS attendance_purchases_order ON attendance_purchases(order_id);
CREATE TABLE IF NOT EXISTS attendance_refunds (
  source TEXT NOT NULL, id TEXT NOT NULL, order_id TEXT NOT NULL, record_id TEXT NOT NULL,
  amount_minor INTEGER NOT NULL, PRIMARY KEY (source, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS attendance_refunds_order ON attendance_refunds(order_id);
CREATE INDEX IF NOT EXISTS attendance_refunds_record ON attendance_refunds(record_id);
CREATE INDEX IF NOT EXISTS attendance_purchases_record ON attendance_purchases(record_id);
CREATE TABLE IF NOT EXISTS attendance_sittings (
  store_id TEXT NOT NULL, day TEXT NOT NULL, sitting TEXT NOT NULL, record_id TEXT NOT NULL,
  orders INTEGER NOT NULL, spend_minor INTEGER NOT NULL, refund_minor INTEGER NOT NULL, covers INTEGER,
  PRIMARY KEY (store_id, day, sitting, record_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS attendance_sittings_record ON attendance_sittings(record_id);
-- Refunds take at most their order's amount (the first purchase's), as the store KPIs count them: a refund
-- re-sent under a new id, or refunds beyond the order, never come off another order of the sitting. The
-- triggers of the first version took them whole; they are replaced (IF NOT EXISTS would keep them).
DROP TRIGGER IF EXISTS attendance_purchase_kept;
DROP TRIGGER IF EXISTS attendance_refund_kept;
-- A new purchase joins its sitting, with what was refunded of its order before it arrived, up to its amount
-- (only the order's first purchase takes its refunds, so an order sent twice never loses them twice).
CREATE TRIGGER IF NOT EXISTS attendance_purchase_joins AFTER INSERT ON attendance_purchases BEGIN
  INSERT INTO attendance_sittings VALUES (NEW.store_id, NEW.day, NEW.sitting, NEW.record_id, 1, NEW.amount_minor,
    CASE WHEN EXISTS (SELECT 1 FROM attendance_purchases p WHERE p.order_id = NEW.order_id
                      AND (p.source != NEW.source OR p.id != NEW.id)) THEN 0
         ELSE min(NEW.amount_minor, (SELECT COALESCE(SUM(amount_minor), 0) FROM attendance_refunds
                                     WHERE order_id = NEW.order_id)) END,
    NEW.covers)
  ON CONFLICT (store_id, day, sitting, record_id) DO UPDATE SET orders = orders + 1,
    spend_minor = spend_minor + excluded.spend_minor, refund_minor = refund_minor + excluded.refund_minor,
    covers = {_MAX_COVERS};
END;
-- A new refund comes off the sitting of its order's first purchase, if that arrived already: what the order's
-- refunds take now (their sum, this one included, capped at the amount) less what they took before it.
CREATE TRIGGER IF NOT EXISTS attendance_refund_joins AFTER INSERT ON attendance_refunds BEGIN
  UPDATE attendance_sittings SET refund_minor = refund_minor + (
    SELECT min(t.total, p.amount_minor) - min(t.total - NEW.amount_minor, p.amount_minor)
      FROM (SELECT SUM(amount_minor) AS total FROM attendance_refunds WHERE order_id = NEW.order_id) AS t,
           (SELECT amount_minor FROM attendance_purchases WHERE order_id = NEW.order_id ORDER BY rowid LIMIT 1) AS p)
   WHERE (store_id, day, sitting, record_id) = (SELECT store_id, day, sitting, record_id FROM attendance_purchases
                                                WHERE order_id = NEW.order_id ORDER BY rowid LIMIT 1);
END;
"""


class SqliteAttendance:
    """The attendance aggregate in the alerts SQLite file (needs ``self.db``; schema :data:`ATTENDANCE_SQL`)."""

    db: object

    def add_sittings(self, rows: list[SittingFact], *, refunds: list[RefundFact]) -> None:
        """Keep a batch's purchases by sitting and its refunds by order, each sitting's totals with them."""
        c = self.db.conn()  # type: ignore[attr-defined]
        c.executemany("INSERT OR IGNORE INTO attendance_purchases VALUES (?,?,?,?,?,?,?,?,?)",
                      [(r.source, r.id, r.order_id, r.record_id, r.store_id, r.day, r.sitting, r.amount_minor,
                        r.covers) for r in rows])
        c.executemany("INSERT OR IGNORE INTO attendance_refunds VALUES (?,?,?,?,?)",
                      [(r.source, r.id, r.order_id, r.record_id, r.amount_minor) for r in refunds])

    def sittings_at(self, store_id: str, *, first: date, until: date) -> list[SittingRow]:
        """The sittings at a store from ``first`` up to (not including) ``until``, per record."""
        rows = self.db.conn().execute(  # type: ignore[attr-defined]
            "SELECT record_id, day, sitting, orders, spend_minor, refund_minor, covers FROM attendance_sittings"
            " WHERE store_id = ? AND day >= ? AND day < ?", (store_id, first.isoformat(), until.isoformat()))
        return [SittingRow(*r) for r in rows]

    def tiers_of(self, customer_ids: list[str]) -> dict[str, str | None]:
        """Each customer's tier now: its own loyalty part, else the newest of its records' (as its facts read it)."""
        owner = self.members(customer_ids)  # type: ignore[attr-defined]
        ids, rows = list(owner), []
        for start in range(0, len(ids), 900):
            part = ids[start:start + 900]
            rows += self.db.conn().execute(  # type: ignore[attr-defined]
                f"SELECT record_id, tier, version FROM loyalty WHERE record_id IN ({_in(part)})", part).fetchall()
        return pick_tiers(customer_ids, owner=owner, rows=rows)

    def erase_attendance(self, ids: list[str]) -> None:
        """Forget these records' purchases, refunds and sittings (an erasure)."""
        c, q = self.db.conn(), _in(ids)  # type: ignore[attr-defined]
        for table in ("attendance_purchases", "attendance_refunds", "attendance_sittings"):
            c.execute(f"DELETE FROM {table} WHERE record_id IN ({q})", ids)
