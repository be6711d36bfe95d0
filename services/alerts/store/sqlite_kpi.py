"""Store KPIs' aggregates in SQLite (issue 15): kept by the same calls that keep purchases and refunds."""

from __future__ import annotations

from services.alerts.reports.kpi_aggregate import TOTALS, Changes, Order, fold_sales, refunds_of, sales_of
from services.alerts.store.kpi_rows import RecordMonth, StoreMonth
from shared.contract.facts import PurchaseFact, RefundFact
from shared.storage.base import in_placeholders as _in
from shared.storage.fact_tables import open_field

MANAGER = "attributes.account_manager"

KPI_SQL = """
CREATE TABLE IF NOT EXISTS kpi_orders (
  order_id TEXT PRIMARY KEY, store_id TEXT, month TEXT, record_id TEXT, amount_minor INTEGER,
  refunded_minor INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kpi_store_month (
  store_id TEXT NOT NULL, month TEXT NOT NULL, orders INTEGER NOT NULL, sales_minor INTEGER NOT NULL,
  refunds_minor INTEGER NOT NULL, member_orders INTEGER NOT NULL, member_sales_minor INTEGER NOT NULL,
  member_refunds_minor INTEGER NOT NULL, PRIMARY KEY (store_id, month)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kpi_record_month (
  month TEXT NOT NULL, store_id TEXT NOT NULL, record_id TEXT NOT NULL, days INTEGER NOT NULL,
  orders INTEGER NOT NULL, spend_minor INTEGER NOT NULL, PRIMARY KEY (month, store_id, record_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kpi_records (record_id TEXT PRIMARY KEY, first_day TEXT NOT NULL, second_day TEXT)
  WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kpi_backfills (name TEXT PRIMARY KEY) WITHOUT ROWID;
"""

# Once per database: the first two purchase days of every record from the purchases alerts kept before the KPI
# aggregates existed (the purchases table holds every member purchase the aggregates count, so this is exact).
FIRST_DAYS = "first_days"
_BACKFILL = ("INSERT OR REPLACE INTO kpi_records SELECT f.record_id, f.first_day,"
             " (SELECT MIN(p.day) FROM purchases p WHERE p.record_id = f.record_id AND p.day > f.first_day)"
             " FROM (SELECT record_id, MIN(day) AS first_day FROM purchases GROUP BY record_id) f")

_TOTALS = (f"INSERT INTO kpi_store_month VALUES (?,?,{','.join('?' * len(TOTALS))}) ON CONFLICT(store_id, month)"
           " DO UPDATE SET " + ", ".join(f"{c} = {c} + excluded.{c}" for c in TOTALS))
_RECORDS = ("INSERT INTO kpi_record_month VALUES (?,?,?,?,?,?) ON CONFLICT(month, store_id, record_id) DO UPDATE"
            " SET days = days | excluded.days, orders = orders + excluded.orders,"
            " spend_minor = spend_minor + excluded.spend_minor")
_CHUNK = 900


def _chunks(ids: list, size: int = _CHUNK):
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


class SqliteKpi:
    """The KPI aggregates of a SQLite alerts store (mixed into ``SqliteAlertsStore``)."""

    db: object

    def add_store_sales(self, purchases: list[PurchaseFact], refunds: list[RefundFact]) -> None:
        """Non-members' purchases and refunds: kept in store totals only."""
        self.kpi_add(purchases, refunds, member=False)

    def kpi_add(self, purchases: list[PurchaseFact], refunds: list[RefundFact], *, member: bool = True) -> None:
        """Fold new purchases and refunds into the aggregates: two reads, four bulk writes."""
        if not purchases and not refunds:
            return
        sales, refunds = sales_of(purchases, member=member), refunds_of(refunds)
        c = self.db.conn()  # type: ignore[attr-defined]
        order_ids = sorted({s.order_id for s in sales} | {o for o, _ in refunds})
        held: dict[str, Order] = {}
        for part in _chunks(order_ids):
            for row in c.execute(f"SELECT * FROM kpi_orders WHERE order_id IN ({_in(part)})", part):
                held[row[0]] = Order(*row)
        records = sorted({s.record_id for s in sales if s.record_id is not None})  # type: ignore[misc]
        firsts: dict[str, tuple[str, str | None]] = {}
        for part in _chunks(records):
            firsts.update((r, (a, b)) for r, a, b in c.execute(
                f"SELECT * FROM kpi_records WHERE record_id IN ({_in(part)})", part))
        self._kpi_write(c, fold_sales(sales, refunds, held=held, firsts=firsts))

    @staticmethod
    def _kpi_write(c, ch: Changes) -> None:
        c.executemany("INSERT OR REPLACE INTO kpi_orders VALUES (?,?,?,?,?,?)",
                      [(o.order_id, o.store_id, o.month, o.record_id, o.amount_minor, o.refunded_minor)
                       for o in ch.orders])
        c.executemany(_TOTALS, [(s, m, *v) for (s, m), v in ch.totals.items()])
        c.executemany(_RECORDS, [(m, s, r, *v) for (s, m, r), v in ch.records.items()])
        c.executemany("INSERT OR REPLACE INTO kpi_records VALUES (?,?,?)",
                      [(r, a, b) for r, (a, b) in ch.firsts.items()])

    def kpi_backfill(self) -> None:
        """Give records kept before the KPI aggregates their first purchase days, once per database: without
        them every returning customer counted as new (and of tenure 0) in the first month after an upgrade."""
        c = self.db.conn()  # type: ignore[attr-defined]
        done = "SELECT 1 FROM kpi_backfills WHERE name = ?"
        if c.execute(done, (FIRST_DAYS,)).fetchone() is not None:
            return  # every later start: one read, no write lock taken
        with self.transaction():  # type: ignore[attr-defined]
            if c.execute(done, (FIRST_DAYS,)).fetchone() is None:  # another worker may have just done it
                c.execute(_BACKFILL)
                c.execute("INSERT INTO kpi_backfills VALUES (?)", (FIRST_DAYS,))

    def kpi_totals(self, *, months: list[str], stores: list[str] | None) -> list[StoreMonth]:
        """Store totals of these months, of these stores (None: every store)."""
        sql, args = f"SELECT * FROM kpi_store_month WHERE month IN ({_in(months)})", list(months)
        out: list[StoreMonth] = []
        for part in [None] if stores is None else list(_chunks(stores)) or [[]]:
            more = "" if part is None else f" AND store_id IN ({_in(part)})"
            out += [StoreMonth(r[0], r[1], *r[2:]) for r in self.db.conn().execute(  # type: ignore[attr-defined]
                sql + more, args + (part or []))]
        return out

    def kpi_records(self, *, months: list[str], stores: list[str] | None) -> list[RecordMonth]:
        """Per store, month and record: purchase days (bits), orders, net spend, of these months and stores."""
        out: list[RecordMonth] = []
        c = self.db.conn()  # type: ignore[attr-defined]
        for month in months:
            if stores is None:
                out += map(RecordMonth._make, c.execute("SELECT * FROM kpi_record_month WHERE month = ?", (month,)))
                continue
            for part in _chunks(stores):
                out += map(RecordMonth._make, c.execute(
                    f"SELECT * FROM kpi_record_month WHERE month = ? AND store_id IN ({_in(part)})", [month, *part]))
        return out

    def kpi_firsts(self, records: list[str]) -> dict[str, tuple[str, str | None]]:
        """Each record's first two distinct purchase days (the second None when it has one)."""
        out: dict[str, tuple[str, str | None]] = {}
        for part in _chunks(records):
            out.update((r, (a, b)) for r, a, b in self.db.conn().execute(  # type: ignore[attr-defined]
                f"SELECT * FROM kpi_records WHERE record_id IN ({_in(part)})", part))
        return out

    def kpi_managed(self, records_of: dict[str, list[str]]) -> set[str]:
        """Which of these customers (customer -> their records) an account manager manages now: the newest
        ``attributes.account_manager`` over their records is set."""
        owner = {r: c for c, records in records_of.items() for r in records}
        newest: dict[str, tuple] = {}
        for part in _chunks(sorted(owner)):
            rows = self.db.conn().execute(  # type: ignore[attr-defined]
                "SELECT record_id, value, time_ms, source, event_id FROM attributes WHERE field = ?"
                f" AND record_id IN ({_in(part)})", [MANAGER, *part]).fetchall()
            if rows:
                self.keys.load({r[0] for r in rows})  # type: ignore[attr-defined]
            for record, value, *order in rows:
                held = newest.get(owner[record])
                if held is None or tuple(order) > held[0]:
                    newest[owner[record]] = (tuple(order), open_field(self.keys, record, MANAGER, value))  # type: ignore[attr-defined]
        return {c for c, (_, value) in newest.items() if value}

    def kpi_erase(self, ids: list[str]) -> None:
        """Forget erased records in the aggregates: their rows go, their orders stay in the store totals."""
        c = self.db.conn()  # type: ignore[attr-defined]
        for part in _chunks(ids):
            c.execute(f"DELETE FROM kpi_record_month WHERE record_id IN ({_in(part)})", part)
            c.execute(f"DELETE FROM kpi_records WHERE record_id IN ({_in(part)})", part)
            c.execute(f"UPDATE kpi_orders SET record_id = '' WHERE record_id IN ({_in(part)})", part)
