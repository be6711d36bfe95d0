"""Issue 15, clv: the SQLite side of the customer-value model: each customer's spend per purchase day (what
Gamma-Gamma is fitted on) and the spend model kept per as-of date."""

from __future__ import annotations

import json
from datetime import date

from shared.clv import Spending, SpendModel, spend_by_customer, spend_model_doc, spend_model_of, spendings, summarised
from shared.storage.base import in_placeholders as _in

_CHUNK = 500  # records per statement: far below SQLite's variable limit

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

    def purchase_summaries(self, *, until: date) -> dict[str, Spending]:
        """Every customer's summary of spend per purchase day up to ``until`` (``spendings`` of
        :meth:`purchase_spend`, exactly), through the membership mapping."""
        # The database sums each record's days (first, last, how many, spend, the first day's): 100,000 rows where
        # the days are 1,000,000. A customer of several records (merged: few) is summed from its days in Python,
        # where one day bought on by two of its records counts once.
        c = self.db.conn()  # type: ignore[attr-defined]
        hi = until.isoformat()
        owner = dict(c.execute("SELECT record_id, customer_id FROM memberships WHERE customer_id != record_id"))
        joined = set(owner.values())
        days: dict[str, date] = {}  # a few hundred distinct days: parsed once each
        out, apart = {}, []
        for record, first, last, n, spend, first_spend in c.execute(
                "SELECT g.record_id, g.first, g.last, g.n, g.spend, v.spend_minor FROM (SELECT record_id, MIN(day)"
                " AS first, MAX(day) AS last, COUNT(*) AS n, SUM(spend_minor) AS spend FROM value_days WHERE day <= ?"
                " GROUP BY record_id) g JOIN value_days v ON v.record_id = g.record_id AND v.day = g.first", (hi,)):
            if record in owner or record in joined:
                apart.append(record)
                continue
            for text in (first, last):
                if text not in days:
                    days[text] = date.fromisoformat(text)
            out[record] = summarised(days[first], days[last], n, spend, first_spend, until)
        rows = []
        for i in range(0, len(apart), _CHUNK):
            part = apart[i:i + _CHUNK]
            rows += c.execute(f"SELECT record_id, day, spend_minor FROM value_days WHERE record_id IN ({_in(part)})"
                              f" AND day <= ?", [*part, hi]).fetchall()
        out.update(spendings(spend_by_customer(rows, owner), until))
        return out

    def put_spend_model(self, model: SpendModel, *, fitted_at: str) -> None:
        """Keep a fitted spend model for its as-of date (the first one kept stays: one fit per as-of)."""
        self.db.conn().execute("INSERT OR IGNORE INTO clv_models VALUES (?,?,?)",  # type: ignore[attr-defined]
                               (model.as_of.isoformat(), json.dumps(spend_model_doc(model)), fitted_at))

    def spend_model(self, as_of: date) -> tuple[SpendModel, str] | None:
        """The spend model fitted as of a date and when it was fitted, if any."""
        row = self.db.conn().execute("SELECT doc, fitted_at FROM clv_models WHERE as_of = ?",  # type: ignore[attr-defined]
                                     (as_of.isoformat(),)).fetchone()
        return (spend_model_of(json.loads(row[0])), row[1]) if row else None
