"""Store KPIs' aggregates in SQLite (issue 15): kept by the same calls that keep purchases and refunds."""

from __future__ import annotations

import json
from dataclasses import replace

from services.alerts.reports.kpi import TENURE, Figures, month_shift, plus
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
CREATE INDEX IF NOT EXISTS kpi_record_month_record ON kpi_record_month(month, record_id, days);
CREATE INDEX IF NOT EXISTS kpi_merged_records ON memberships(customer_id) WHERE record_id != customer_id;
CREATE INDEX IF NOT EXISTS kpi_account_managers ON attributes(record_id)
  WHERE field = 'attributes.account_manager';
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


# A record is "alone" when no other record belongs to its customer and it belongs to no other customer: it is its
# own customer with its own first days and account manager. Every record is counted in SQL as if it were alone (no
# mapping, no test per row); then the records of merged customers (kpi_merged_records: few) are taken out of those
# counts (``record_figures``) and counted by their customer in Python (``customer_figures``).
_MERGED = "SELECT record_id, customer_id FROM memberships WHERE record_id != customer_id"
_MANAGERS = f"SELECT record_id, value FROM attributes WHERE field = '{MANAGER}'"


def _bit_count(x: str) -> str:
    """SQL for the number of bits set in ``x`` (a month's day bits, under 2**31): the SWAR sum of bits in pairs,
    fours and bytes, then the bytes added by one multiplication (SQLite has no popcount; a Python function
    called per row costs more)."""
    a = f"({x} - (({x} >> 1) & 1431655765))"
    b = f"(({a} & 858993459) + (({a} >> 2) & 858993459))"
    return f"(((({b} + ({b} >> 4)) & 252645135) * 16843009) >> 24 & 255)"


# Each alone record's days of the month over the stores (a bit per day OR'd over its stores' rows), its first days
# and whether it bought in the month before; then the month's counts over those records. Tenure compares the first
# day with the first day of the month ``hi`` months back (:since_<hi>): string comparisons, no date arithmetic
# per row; the retention window's date arithmetic runs for the month's new customers only.
_ALONE = """
WITH g AS (
  SELECT record_id, CASE WHEN COUNT(*) > 1 THEN kpi_or(group_concat(days)) ELSE MAX(days) END AS days
  FROM kpi_record_month WHERE month = :month{stores} GROUP BY record_id),
c AS (
  SELECT g.days, k.first_day, k.second_day,
    EXISTS (SELECT 1 FROM kpi_record_month p WHERE p.month = :before AND p.record_id = g.record_id{stores}) AS kept
  FROM g LEFT JOIN kpi_records k ON k.record_id = g.record_id)
SELECT COUNT(*), SUM(kept), SUM({bits}), SUM(days & (days - 1) != 0),
  SUM(first_day >= :start AND first_day < :next),
  SUM(CASE WHEN first_day >= :start AND first_day < :next THEN second_day <= date(first_day, :window) END),
  SUM(first_day IS NULL OR first_day >= :start), {since}
FROM c
""".replace("{bits}", _bit_count("days")).replace("{since}", ", ".join(
    f"SUM(first_day IS NULL OR first_day >= :since_{hi})" for _, lo, hi in TENURE if lo and hi))
# The alone records of a month (the months before the report's months).
_ALONE_COUNT = ("SELECT COUNT(*) FROM (SELECT record_id FROM kpi_record_month WHERE month = :month{stores}"
                " GROUP BY record_id)")
# The month's managed alone records, looked up from the (few) records with an account manager set.
_MANAGED = ("SELECT COUNT(DISTINCT k.record_id) FROM json_each(:managed) j"
            " CROSS JOIN kpi_record_month k INDEXED BY kpi_record_month_record"
            " WHERE k.month = :month AND k.record_id = j.value{stores}")
# Every row of the months of the merged customers' records, looked up record by record.
_MERGED_ROWS = ("SELECT k.* FROM json_each(:months) m CROSS JOIN json_each(:merged) r"
                " CROSS JOIN kpi_record_month k INDEXED BY kpi_record_month_record"
                " WHERE k.month = m.value AND k.record_id = r.value{stores}")
_STORES = " AND store_id IN (SELECT value FROM json_each(:stores))"


def _or(days: str) -> int:
    """The OR of a record's day bits over its stores' rows (``group_concat``'s text)."""
    out = 0
    for d in days.split(","):
        out |= int(d)
    return out


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
            opened = self._kpi_open([(record, value) for record, value, *_ in rows])
            for record, value, *order in rows:
                held = newest.get(owner[record])
                if held is None or tuple(order) > held[0]:
                    newest[owner[record]] = (tuple(order), opened[(record, value)])
        return {c for c, (_, value) in newest.items() if value}

    def kpi_customers(self, before: dict[str, str], *, stores: list[str] | None,
                      retention_days: int) -> dict[str, Figures]:
        """The customer figures of each month (``before``: month -> the month before) over ``stores``, every
        record mapped to its customer now (the store totals' figures left at 0): records alone counted in SQL,
        merged customers' records in Python."""
        from services.alerts.reports.kpi_read import customer_figures, record_figures  # they read through it

        c = self.db.conn()  # type: ignore[attr-defined]
        c.create_function("kpi_or", 1, _or, deterministic=True)
        merged = sorted({x for pair in c.execute(_MERGED) for x in pair})
        args = {"merged": json.dumps(merged), "stores": json.dumps(stores),
                "managed": json.dumps(sorted(self._kpi_managers(c))),
                "window": f"+{retention_days} days"}
        where = "" if stores is None else _STORES
        sql, count, managed = (q.replace("{stores}", where) for q in (_ALONE, _ALONE_COUNT, _MANAGED))
        out: dict[str, Figures] = {}
        for month, prior in before.items():
            start = {hi: f"{month_shift(month, -hi)}-01" for _, _, hi in TENURE if hi is not None}
            at = {**args, "month": month, "before": prior, "start": start[0], "next": f"{month_shift(month, 1)}-01",
                  **{f"since_{hi}": day for hi, day in start.items() if hi}}
            n = [v or 0 for v in c.execute(sql, at).fetchone()]
            since = [*n[6:], n[0]]  # first day (or none) since the month's start, since each bucket's, any
            out[month] = Figures(month, customers=n[0], retained_customers=n[1], purchase_days=n[2],
                                 repeat_customers=n[3], new_customers=n[4], returning_new=n[5],
                                 managed_customers=c.execute(managed, at).fetchone()[0],
                                 tenure={name: since[i] - (since[i - 1] if i else 0)
                                         for i, (name, _, _) in enumerate(TENURE)})
        for month, prior in before.items():
            held = out[prior].customers if prior in out else c.execute(count, {**args, "month": prior}).fetchone()[0]
            out[month] = replace(out[month], previous_customers=held)
        if not merged:
            return out
        months = sorted(set(before) | set(before.values()))
        rows = list(map(RecordMonth._make, c.execute(_MERGED_ROWS.replace("{stores}", where),
                                                     {**args, "months": json.dumps(months)})))
        apart = record_figures(before, rows, firsts=self.kpi_firsts(sorted({r.record_id for r in rows})),
                               managed=self._kpi_managers(c), retention_days=retention_days)
        together = customer_figures(self, before, rows, retention_days=retention_days)  # type: ignore[arg-type]
        return {m: plus(plus(out[m], apart[m], -1), together[m]) for m in before}

    def _kpi_managers(self, c) -> set[str]:
        """The records whose own account manager is set now."""
        rows = c.execute(_MANAGERS).fetchall()
        opened = self._kpi_open(rows)
        self._kpi_opened = {(r, v): opened[(r, v)] for r, v in rows}  # only the values held now
        return {r for r, v in rows if opened[(r, v)]}

    def _kpi_open(self, rows: list[tuple[str, str]]) -> dict[tuple[str, str], bool]:
        """Whether each stored account manager (record, stored text) is set. Opening a sealed value costs a key and a
        decryption: what each stored text says is kept (the text changes with the value, an erasure deletes it)."""
        held: dict[tuple[str, str], bool] = getattr(self, "_kpi_opened", {})
        fresh = [(r, v) for r, v in rows if (r, v) not in held]
        if fresh:
            self.keys.load({r for r, _ in fresh})  # type: ignore[attr-defined]
            held = {**held, **{(r, v): bool(open_field(self.keys, r, MANAGER, v))  # type: ignore[attr-defined]
                               for r, v in fresh}}
            self._kpi_opened = held
        return held

    def kpi_erase(self, ids: list[str]) -> None:
        """Forget erased records in the aggregates: their rows go, their orders stay in the store totals."""
        c = self.db.conn()  # type: ignore[attr-defined]
        for part in _chunks(ids):
            c.execute(f"DELETE FROM kpi_record_month WHERE record_id IN ({_in(part)})", part)
            c.execute(f"DELETE FROM kpi_records WHERE record_id IN ({_in(part)})", part)
            c.execute(f"UPDATE kpi_orders SET record_id = '' WHERE record_id IN ({_in(part)})", part)
