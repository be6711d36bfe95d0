"""Issue 15, satisfaction: survey scores per store and month, purchase days per store, month and record (the
loyal-customer count), and the reasons alerts were resolved for, in alerts' SQLite file."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

from services.alerts.reports.satisfaction import SCORES, ReasonRow, SurveyScore, VisitDay, month_of
from shared.storage.base import in_placeholders as _in
from shared.storage.crypto import SERVICE

SATISFACTION_SQL = """
CREATE TABLE IF NOT EXISTS sat_surveys (
  month TEXT NOT NULL, store_id TEXT NOT NULL, score INTEGER NOT NULL, n INTEGER NOT NULL,
  PRIMARY KEY (month, store_id, score)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sat_visits (
  month TEXT NOT NULL, store_id TEXT NOT NULL, record_id TEXT NOT NULL, days INTEGER NOT NULL,
  PRIMARY KEY (month, store_id, record_id)
) WITHOUT ROWID;
DROP INDEX IF EXISTS sat_visits_record;
CREATE INDEX IF NOT EXISTS sat_visits_by_record ON sat_visits(record_id, month, days);
CREATE TABLE IF NOT EXISTS sat_reasons (
  alert_id TEXT PRIMARY KEY, type TEXT NOT NULL, store_id TEXT, month TEXT NOT NULL, reason TEXT,
  reason_text TEXT, record_id TEXT, resolved_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sat_reasons_month ON sat_reasons(month, store_id);
CREATE INDEX IF NOT EXISTS sat_reasons_record ON sat_reasons(record_id);
"""

# Counted in SQL (SQLite has no OR aggregate): two distinct days means two months, or one month whose rows (a
# record's days at a store, a bit per day) hold two bits in one row or differ between rows.
_LOYAL = "MIN(month) != MAX(month) OR MAX(days & (days - 1)) > 0 OR MIN(days) != MAX(days) AS loyal"
# Records of merged customers: the records merged into another and the customers they were merged into.
_MERGED = "SELECT record_id, customer_id FROM memberships WHERE record_id != customer_id"
_REASON_COLUMNS = ("alert_id", "type", "store_id", "month", "reason", "reason_text", "record_id", "resolved_at")


def _stores_sql(stores: frozenset[str] | None) -> tuple[str, list[str]]:
    if stores is None:
        return "", []
    return f" AND store_id IN ({_in(sorted(stores)) or 'NULL'})", sorted(stores)


class SqliteSatisfaction:
    """The satisfaction aggregates (needs ``self.db``, ``self.keys``; schema :data:`SATISFACTION_SQL`)."""

    db: object
    keys: object

    def add_survey_scores(self, rows: list[SurveyScore]) -> None:
        """Count new survey responses into their store-month (one statement for the batch)."""
        counts = Counter((r.month, r.store_id, r.score) for r in rows)
        self.db.conn().executemany(  # type: ignore[attr-defined]
            "INSERT INTO sat_surveys VALUES (?,?,?,?) ON CONFLICT DO UPDATE SET n = n + excluded.n",
            [(*k, n) for k, n in counts.items()])

    def add_visit_days(self, rows: list[VisitDay]) -> None:
        """Note purchase days per store, month and record (a bit per day of the month: a day counts once)."""
        masks: dict[tuple[str, str, str], int] = defaultdict(int)
        for r in rows:
            masks[(month_of(r.day), r.store_id, r.record_id)] |= 1 << (r.day.day - 1)
        self.db.conn().executemany(  # type: ignore[attr-defined]
            "INSERT INTO sat_visits VALUES (?,?,?,?) ON CONFLICT DO UPDATE SET days = days | excluded.days",
            [(*k, m) for k, m in masks.items()])

    def survey_counts(self, *, months: list[str], stores: frozenset[str] | None) -> dict[str, list[int]]:
        """Responses per score 0..10 of each month, over ``stores`` (None: every store and none)."""
        out = {m: [0] * SCORES for m in months}
        where, args = _stores_sql(stores)
        for month, score, n in self.db.conn().execute(  # type: ignore[attr-defined]
                f"SELECT month, score, SUM(n) FROM sat_surveys WHERE month IN ({_in(months)}){where}"
                " GROUP BY month, score", [*months, *args]):
            out[month][score] = n
        return out

    def repeat_buyers(self, *, months: list[str], stores: frozenset[str] | None) -> tuple[int, int]:
        """Customers with a purchase in ``months`` at ``stores`` (None: all), and those of them with purchases on
        at least two distinct days; records mapped to their customer now."""
        where, args = _stores_sql(stores)
        c = self.db.conn()  # type: ignore[attr-defined]
        # Grouped by record first, every record as its own customer: the company's rows read in record order from
        # sat_visits_by_record (no sort of a year's rows); a store's or region's few rows sorted. Then the records
        # of merged customers (few) are taken out of that and counted by their customer through the memberships.
        scan = " INDEXED BY sat_visits_by_record" if stores is None else ""
        by_record = (f"SELECT COUNT(*), COALESCE(SUM(loyal), 0) FROM (SELECT {_LOYAL} FROM sat_visits{scan}"
                     f" WHERE month IN ({_in(months)}){where}{{only}} GROUP BY record_id)")
        alone = c.execute(by_record.replace("{only}", ""), [*months, *args]).fetchone()
        merged = json.dumps(sorted({x for pair in c.execute(_MERGED) for x in pair}))
        if merged == "[]":
            return alone[0], alone[1]
        only = " AND record_id IN (SELECT value FROM json_each(?))"
        apart = c.execute(by_record.replace("{only}", only), [*months, *args, merged]).fetchone()
        together = c.execute(
            f"SELECT COUNT(*), COALESCE(SUM(loyal), 0) FROM (SELECT {_LOYAL} FROM ("
            "SELECT COALESCE(m.customer_id, v.record_id) AS customer, v.month, v.days FROM sat_visits v"
            " LEFT JOIN memberships m ON m.record_id = v.record_id"
            f" WHERE v.month IN ({_in(months)}){where.replace('store_id', 'v.store_id')}"
            f"{only.replace('record_id', 'v.record_id')}) GROUP BY customer)", [*months, *args, merged]).fetchone()
        return alone[0] - apart[0] + together[0], alone[1] - apart[1] + together[1]

    def put_reason(self, row: ReasonRow) -> None:
        """Keep why an alert was resolved (its text sealed); a later resolution of the same alert replaces it."""
        doc = {k: getattr(row, k) for k in _REASON_COLUMNS}
        doc["reason_text"] = self.keys.seal(SERVICE, "alerts.reason_text", row.reason_text)  # type: ignore[attr-defined]
        self.db.conn().execute(  # type: ignore[attr-defined]
            f"INSERT OR REPLACE INTO sat_reasons VALUES ({','.join('?' * len(_REASON_COLUMNS))})",
            [doc[k] for k in _REASON_COLUMNS])

    def reason_counts(self, *, month: str, stores: frozenset[str] | None) -> dict[tuple[str | None, str | None], int]:
        """Resolutions of a month per (store, reason) over ``stores`` (None: all, no store included)."""
        where, args = _stores_sql(stores)
        rows = self.db.conn().execute(  # type: ignore[attr-defined]
            f"SELECT store_id, reason, COUNT(*) FROM sat_reasons WHERE month = ?{where} GROUP BY store_id, reason",
            [month, *args])
        return {(s, r): n for s, r, n in rows}

    def reasons_of(self, records: list[str]) -> list[ReasonRow]:
        """The resolution reasons of alerts raised for these records, oldest first (a customer's export)."""
        rows = self.db.conn().execute(  # type: ignore[attr-defined]
            f"SELECT {','.join(_REASON_COLUMNS)} FROM sat_reasons WHERE record_id IN ({_in(records) or 'NULL'})"
            " ORDER BY resolved_at, alert_id", records)
        out = []
        for r in rows:
            doc = dict(zip(_REASON_COLUMNS, r, strict=True))
            doc["reason_text"] = self.keys.open(SERVICE, "alerts.reason_text", doc["reason_text"])  # type: ignore[attr-defined]
            out.append(ReasonRow(**doc))
        return out

    def erase_satisfaction(self, ids: list[str]) -> None:
        """An erased customer's purchase days go, and the text and record of their reasons (the counts stay)."""
        c = self.db.conn()  # type: ignore[attr-defined]
        q = _in(ids) or "NULL"
        c.execute(f"DELETE FROM sat_visits WHERE record_id IN ({q})", ids)
        c.execute(f"UPDATE sat_reasons SET reason_text = NULL, record_id = NULL WHERE record_id IN ({q})", ids)
