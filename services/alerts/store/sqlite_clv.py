"""Issue 15, clv: the SQLite side of the customer-value model: each customer's spend per purchase day (what
Gamma-Gamma is fitted on) and the spend model kept per as-of date."""

from __future__ import annotations

import json
from datetime import date

from shared.clv import SpendModel, spend_by_customer, spend_model_doc, spend_model_of
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
        # From the customer-value aggregate (a row per record and purchase day, kept with the purchases), not
        # the purchases themselves: a read of 1,000,000 purchases grouped per customer and day took seconds.
        c = self.db.conn()  # type: ignore[attr-defined]
        hi = until.isoformat()
        if customer_id is not None:
            records = self.records_of(customer_id)  # type: ignore[attr-defined]
            owner = dict.fromkeys(records, customer_id)
            rows = c.execute(f"SELECT record_id, day, spend_minor FROM value_days WHERE record_id IN"
                             f" ({_in(records)}) AND day <= ?", [*records, hi])
        else:
            owner = dict(c.execute("SELECT record_id, customer_id FROM memberships WHERE customer_id != record_id"))
            rows = c.execute("SELECT record_id, day, spend_minor FROM value_days WHERE day <= ?", (hi,))
        return spend_by_customer(rows, owner)

    def put_spend_model(self, model: SpendModel, *, fitted_at: str) -> None:
        """Keep a fitted spend model for its as-of date (the first one kept stays: one fit per as-of)."""
        self.db.conn().execute("INSERT OR IGNORE INTO clv_models VALUES (?,?,?)",  # type: ignore[attr-defined]
                               (model.as_of.isoformat(), json.dumps(spend_model_doc(model)), fitted_at))

    def spend_model(self, as_of: date) -> tuple[SpendModel, str] | None:
        """The spend model fitted as of a date and when it was fitted, if any."""
        row = self.db.conn().execute("SELECT doc, fitted_at FROM clv_models WHERE as_of = ?",  # type: ignore[attr-defined]
                                     (as_of.isoformat(),)).fetchone()
        return (spend_model_of(json.loads(row[0])), row[1]) if row else None
