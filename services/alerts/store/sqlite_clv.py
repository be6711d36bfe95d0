"""Issue 15, clv: the SQLite side of the customer-value model: each customer's spend per purchase day (what
Gamma-Gamma is fitted on) and the spend model kept per as-of date."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date

from shared.clv import SpendModel, spend_model_doc, spend_model_of
from shared.storage.base import in_placeholders as _in

CLV_SQL = """
CREATE TABLE IF NOT EXISTS clv_models (as_of TEXT PRIMARY KEY, doc TEXT NOT NULL, fitted_at TEXT NOT NULL)
  WITHOUT ROWID;
"""


class SqliteClv:
    """Mixin of ``SqliteAlertsStore`` (uses its ``db`` and ``records_of``)."""

    def purchase_spend(self, *, until: date, customer_id: str | None = None) -> dict[str, dict[date, int]]:
        """Spend (minor units) per purchase day up to ``until`` of every customer (or one), the amounts of one
        day summed, through the membership mapping (a merge joins two histories, an unmerge splits them)."""
        sql = ("SELECT COALESCE(m.customer_id, p.record_id) AS cust, p.day, SUM(p.amount_minor) FROM purchases p"
               " LEFT JOIN memberships m ON m.record_id = p.record_id WHERE p.day <= ?")
        args: list = [until.isoformat()]
        if customer_id is not None:
            records = self.records_of(customer_id)  # type: ignore[attr-defined]
            sql += f" AND p.record_id IN ({_in(records)})"
            args += records
        out: dict[str, dict[date, int]] = defaultdict(dict)
        for cust, day, amount in self.db.conn().execute(sql + " GROUP BY cust, p.day", args):  # type: ignore[attr-defined]
            out[customer_id or cust][date.fromisoformat(day)] = amount
        return dict(out)

    def put_spend_model(self, model: SpendModel, *, fitted_at: str) -> None:
        """Keep a fitted spend model for its as-of date (the first one kept stays: one fit per as-of)."""
        self.db.conn().execute("INSERT OR IGNORE INTO clv_models VALUES (?,?,?)",  # type: ignore[attr-defined]
                               (model.as_of.isoformat(), json.dumps(spend_model_doc(model)), fitted_at))

    def spend_model(self, as_of: date) -> tuple[SpendModel, str] | None:
        """The spend model fitted as of a date and when it was fitted, if any."""
        row = self.db.conn().execute("SELECT doc, fitted_at FROM clv_models WHERE as_of = ?",  # type: ignore[attr-defined]
                                     (as_of.isoformat(),)).fetchone()
        return (spend_model_of(json.loads(row[0])), row[1]) if row else None
