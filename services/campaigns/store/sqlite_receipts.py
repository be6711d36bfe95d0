"""Delivery receipts in campaigns' SQLite file (issue 14): kept once per ``(source, id)``, read per campaign.

A receipt holds the touch it speaks of, its status, its time and a failure reason, scrubbed of phones,
e-mails and dates before it is stored and sealed under the service's own key (a gateway's free text
may still name someone); the customer's reply text is never kept here.
"""

from __future__ import annotations

from collections.abc import Collection

from services.campaigns.domain.delivery import Receipt
from services.campaigns.store import TouchRow
from shared.contract.facts import FieldValue
from shared.storage.crypto import SERVICE
from shared.storage.fact_tables import open_field

REASON = "receipts.reason"  # the field a reason is sealed as

RECEIPTS_SQL = """
CREATE TABLE IF NOT EXISTS receipts (
  source TEXT NOT NULL, id TEXT NOT NULL, touch_id TEXT NOT NULL, campaign_id TEXT NOT NULL, status TEXT NOT NULL,
  reason TEXT, time_ms INTEGER NOT NULL, mismatched INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (source, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS receipts_campaign ON receipts(campaign_id);
CREATE INDEX IF NOT EXISTS receipts_touch ON receipts(touch_id);
"""

_TOUCH_COLS = "touch_id, campaign_id, customer_id, channel, at_ms, step"


class SqliteReceipts:
    """Receipts and the touch reads they need (needs ``self.db`` and ``self._wanted``)."""

    db: object

    def add_receipts(self, rows: list[Receipt]) -> list[Receipt]:
        """Keep receipts not held before (by source and id); returns those kept now, in order."""
        c, fresh = self.db.conn(), []  # type: ignore[attr-defined]
        for r in rows:  # in-process: a statement per receipt costs microseconds, and tells which were new
            if c.execute("INSERT OR IGNORE INTO receipts (source, id, touch_id, campaign_id, status, reason, time_ms,"
                         " mismatched) VALUES (?,?,?,?,?,?,?,?)",
                         (r.source, r.id, r.touch_id, r.campaign_id, r.status,
                          self.keys.seal(SERVICE, REASON, r.reason), r.time_ms, int(r.mismatched))).rowcount == 1:  # type: ignore[attr-defined]
                fresh.append(r)
        return fresh

    def touches_by_id(self, touch_ids: Collection[str]) -> dict[str, TouchRow]:
        """The touches held of these ids."""
        c = self._wanted(touch_ids)  # type: ignore[attr-defined]
        rows = c.execute(f"SELECT {', '.join('t.' + x.strip() for x in _TOUCH_COLS.split(','))} FROM temp.wanted w"
                         " JOIN touches t ON t.touch_id = w.id")
        return {r[0]: TouchRow(*r) for r in rows}

    def campaign_touches(self, campaign_id: str) -> list[TouchRow]:
        """Every touch a campaign sent (first touches and follow-ups), by touch id."""
        rows = self.db.conn().execute(  # type: ignore[attr-defined]
            f"SELECT {_TOUCH_COLS} FROM touches WHERE campaign_id = ? ORDER BY touch_id", (campaign_id,))
        return [TouchRow(*r) for r in rows]

    def receipts(self, campaign_id: str) -> list[Receipt]:
        """Every receipt kept for a campaign's touches."""
        rows = self.db.conn().execute(  # type: ignore[attr-defined]
            "SELECT source, id, touch_id, campaign_id, status, reason, time_ms, mismatched FROM receipts"
            " WHERE campaign_id = ? ORDER BY source, id", (campaign_id,))
        return [self._receipt(r) for r in rows]  # type: ignore[attr-defined]

    def touches_of(self, member_ids: Collection[str]) -> list[TouchRow]:
        """Every touch sent to these members (as launched), oldest first (a customer's export)."""
        c = self._wanted(member_ids)  # type: ignore[attr-defined]
        rows = c.execute(f"SELECT {', '.join('t.' + x.strip() for x in _TOUCH_COLS.split(','))} FROM temp.wanted w"
                         " CROSS JOIN touches t ON t.customer_id = w.id ORDER BY t.at_ms, t.touch_id")
        return [TouchRow(*r) for r in rows]

    def receipts_of(self, touch_ids: Collection[str]) -> list[Receipt]:
        """Every receipt kept for these touches."""
        c = self._wanted(touch_ids)  # type: ignore[attr-defined]
        rows = c.execute("SELECT r.source, r.id, r.touch_id, r.campaign_id, r.status, r.reason, r.time_ms,"
                         " r.mismatched FROM temp.wanted w CROSS JOIN receipts r ON r.touch_id = w.id"
                         " ORDER BY r.source, r.id")
        return [self._receipt(r) for r in rows]

    def _receipt(self, r: tuple) -> Receipt:
        return Receipt(*r[:5], self.keys.open(SERVICE, REASON, r[5]), r[6], bool(r[7]))  # type: ignore[attr-defined]

    def field_values(self, customers: Collection[str], *, fields: Collection[str]) -> dict[str, dict[str, FieldValue]]:
        """The newest value of each of these profile fields of a few customers (over all their records;
        a customer with no record yet is read as its own record)."""
        c = self._wanted(customers)  # type: ignore[attr-defined]
        wanted = sorted(fields)
        rows = c.execute(
            "SELECT COALESCE(m.customer_id, w.id), a.record_id, a.field, a.value, a.time_ms, a.source, a.event_id"
            " FROM temp.wanted w LEFT JOIN memberships m ON m.customer_id = w.id"
            " JOIN attributes a ON a.record_id = COALESCE(m.record_id, w.id)"
            f" WHERE a.field IN ({','.join('?' * len(wanted))})", wanted).fetchall()
        self.keys.load({r[1] for r in rows})  # type: ignore[attr-defined]
        out: dict[str, dict[str, FieldValue]] = {}
        for cid, record_id, field, stored, ms, source, eid in rows:
            value = FieldValue(field, open_field(self.keys, record_id, field, stored), ms, source, eid)  # type: ignore[attr-defined]
            held = out.setdefault(cid, {}).get(field)
            if held is None or value.order() > held.order():
                out[cid][field] = value
        return out
