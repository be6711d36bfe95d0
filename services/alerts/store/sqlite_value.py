"""Customer value's aggregate in SQLite (issue 15, part 4): per record and purchase day, kept with the facts.

``value_days`` holds, per identity record and local purchase day, the spend, the refunds of those purchases and
the number of purchases; ``value_orders`` ties an order to the (record, day) of its purchase so a refund lands
on its purchase's day, holds a refund that arrived first until its purchase comes, and keeps the sum of the
order's purchases, which its refunds never take off more than (``amount_minor`` NULL: an order kept before
refunds were capped, whose amount is not known; its refunds stay uncapped). Both are written in the
same transaction as the purchases and refunds, with one bulk statement per table per batch; reads group records
into customers through the membership table, so merges and unmerges regroup every past day without a rewrite.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import date

from services.alerts.reports.value import Held, ValueTotals, day_deltas, refund_deltas, totals_of
from shared.contract.facts import PurchaseFact, RefundFact
from shared.storage.changes import CHANGES_KEEP, SqliteChanges, changes_sql

VALUE_SQL = """
CREATE TABLE IF NOT EXISTS value_days (
  record_id TEXT NOT NULL, day TEXT NOT NULL, spend_minor INTEGER NOT NULL, refund_minor INTEGER NOT NULL,
  orders INTEGER NOT NULL, PRIMARY KEY (record_id, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS value_orders (
  order_id TEXT PRIMARY KEY, record_id TEXT, day TEXT, refund_minor INTEGER NOT NULL, amount_minor INTEGER
) WITHOUT ROWID;
""" + changes_sql("value")

VALUE_LOG = "value"  # the store's log of changes the customer-value report reads (``shared.storage.changes``)
VALUE_LOG_KEEP = CHANGES_KEEP  # generations whose changed ids are kept: a report kept further back is computed afresh
VALUE_BACKFILL_MARK = "value_days.backfilled"  # set once the purchases before the aggregate are in it
_CHUNK = 400  # keys per statement, two variables each: far below SQLite's limit


def _chunks(items: list, size: int = _CHUNK):
    for i in range(0, len(items), size):
        yield items[i:i + size]


class SqliteValue(SqliteChanges):
    """Keeps and reads the customer-value aggregate (needs ``self.db``; schema :data:`VALUE_SQL`)."""

    db: object

    def _held(self, table: str, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (source, id) keys ``table`` holds already, each looked up by its primary key."""
        out: set[tuple[str, str]] = set()
        for part in _chunks(keys):
            out |= set(self.db.conn().execute(  # type: ignore[attr-defined]
                f"WITH k(source, id) AS (VALUES {','.join(['(?,?)'] * len(part))}) SELECT t.source, t.id"
                f" FROM k CROSS JOIN {table} t ON t.source = k.source AND t.id = k.id", [x for k in part for x in k]))
        return out

    def fresh_facts(self, table: str, rows: list) -> list:
        """The rows of a batch of purchases or refunds not held yet (call before inserting them)."""
        held = self._held(table, list({(r.source, r.id) for r in rows}))
        seen: set[tuple[str, str]] = set()
        out = []
        for r in rows:
            if (r.source, r.id) not in held and (r.source, r.id) not in seen:
                seen.add((r.source, r.id))
                out.append(r)
        return out

    def bump_value(self, ids: Iterable[str] | None) -> None:
        """Note, in the writer's transaction, that what the customer-value report reads has changed, and for
        which record or customer ids (None: unknown, a kept report is then computed afresh)."""
        self.bump_log(VALUE_LOG, ids)

    def value_generation(self) -> int:
        """How many times what the report reads has changed (0: never): equal numbers, equal reports."""
        return self.log_generation(VALUE_LOG)

    def value_changes(self, *, after: int, upto: int) -> set[str] | None:
        """The record and customer ids changed by generations after..upto, or None when that is not known."""
        return self.log_changes(VALUE_LOG, after=after, upto=upto)

    def value_totals_of(self, customer_ids: list[str], *, since: date, until: date) -> list[ValueTotals]:
        """These ids' totals as ``value_totals`` gives them (ids with no purchase day left out)."""
        c = self.db.conn()  # type: ignore[attr-defined]
        # As ``value_totals`` groups them: an id's own record unless it belongs to another customer, and every
        # record that belongs to it.
        mapped = self.customers_of(customer_ids)  # type: ignore[attr-defined]
        owner = {x: x for x in customer_ids if mapped[x] == x}
        for part in _chunks(customer_ids):
            owner.update(c.execute(f"SELECT record_id, customer_id FROM memberships WHERE customer_id IN"
                                   f" ({','.join('?' * len(part))})", part))
        days: dict[str, dict[str, list[int]]] = defaultdict(dict)
        records = list(owner)
        for part in _chunks(records):
            for rec, day, net, n in c.execute(
                    f"SELECT record_id, day, spend_minor - refund_minor, orders FROM value_days WHERE day <= ?"
                    f" AND record_id IN ({','.join('?' * len(part))})", [until.isoformat(), *part]):
                acc = days[owner[rec]].setdefault(day, [0, 0])
                acc[0] += net
                acc[1] += n
        return [totals_of(cust, by_day, since=since.isoformat()) for cust, by_day in days.items()]

    def _orders(self, order_ids: list[str]) -> dict[str, Held]:
        out = {}
        for part in _chunks(order_ids):
            for order, *held in self.db.conn().execute(  # type: ignore[attr-defined]
                    f"SELECT order_id, record_id, day, amount_minor, refund_minor FROM value_orders"
                    f" WHERE order_id IN ({','.join('?' * len(part))})", part):
                out[order] = Held(*held)
        return out

    def keep_value_purchases(self, rows: list[PurchaseFact]) -> None:
        """Add new purchases to the aggregate; a refund of the order that came first lands with them."""
        if not rows:
            return
        c = self.db.conn()  # type: ignore[attr-defined]
        spend, orders, refund, placed = day_deltas(rows, self._orders(sorted({r.order_id for r in rows})))
        c.executemany("INSERT INTO value_orders (order_id, record_id, day, refund_minor, amount_minor)"
                      " VALUES (?,?,?,0,?) ON CONFLICT(order_id) DO UPDATE SET record_id = excluded.record_id,"
                      " day = excluded.day, amount_minor = excluded.amount_minor",
                      [(o, h.record_id, h.day, h.amount_minor) for o, h in placed.items()])
        c.executemany("INSERT INTO value_days VALUES (?,?,?,?,?) ON CONFLICT(record_id, day) DO UPDATE SET"
                      " spend_minor = spend_minor + excluded.spend_minor,"
                      " refund_minor = refund_minor + excluded.refund_minor, orders = orders + excluded.orders",
                      [(*k, spend[k], refund[k], orders[k]) for k in spend])
        self.bump_value({r.record_id for r in rows})

    def keep_value_refunds(self, rows: list[RefundFact]) -> None:
        """Add new refunds to the aggregate, on their order's purchase day (kept aside until it comes), never
        taking off more than the order's amount."""
        if not rows:
            return
        c = self.db.conn()  # type: ignore[attr-defined]
        amount: Counter = Counter()
        for r in rows:
            amount[r.order_id] += r.amount_minor
        taken = refund_deltas(amount, self._orders(sorted(amount)))
        c.executemany("INSERT INTO value_orders (order_id, record_id, day, refund_minor, amount_minor)"
                      " VALUES (?, NULL, NULL, ?, 0) ON CONFLICT(order_id) DO UPDATE SET"
                      " refund_minor = refund_minor + excluded.refund_minor", list(amount.items()))
        c.executemany("UPDATE value_days SET refund_minor = refund_minor + ? WHERE record_id = ? AND day = ?",
                      [(t, rec, day) for (rec, day), t in taken.items()])
        if taken:  # refunds of orders not purchased yet, or already refunded in full, change no figure
            self.bump_value({rec for rec, _ in taken})

    def value_totals(self, *, since: date, until: date) -> list[ValueTotals]:
        """Every customer's totals: over purchase days ``since``..``until`` and over all days up to ``until``."""
        c = self.db.conn()  # type: ignore[attr-defined]
        lo, hi = since.isoformat(), until.isoformat()
        # Records merged into another customer are few: the rest are customers of their own, summed by the
        # database in primary-key order (no join, no temporary tree); a merged customer's days are gathered
        # below, where one day bought on by two of its records counts once.
        owner = dict(c.execute("SELECT record_id, customer_id FROM memberships WHERE customer_id != record_id"))
        joined = set(owner.values())
        out, merged = [], defaultdict(list)
        for rec, net, n, pdays, days, first, last in c.execute(
                "SELECT record_id, SUM(CASE WHEN day >= :lo THEN spend_minor - refund_minor ELSE 0 END),"
                " SUM(CASE WHEN day >= :lo THEN orders ELSE 0 END), SUM(day >= :lo), COUNT(*), MIN(day), MAX(day)"
                " FROM value_days WHERE day <= :hi GROUP BY record_id", {"lo": lo, "hi": hi}):
            if rec in owner or rec in joined:
                merged[owner.get(rec, rec)].append(rec)
            else:
                out.append(ValueTotals(rec, net, n, pdays, days, date.fromisoformat(first), date.fromisoformat(last)))
        for cust, records in merged.items():
            by_day: dict[str, list[int]] = {}
            for day, net, n in c.execute(
                    f"SELECT day, spend_minor - refund_minor, orders FROM value_days WHERE day <= ?"
                    f" AND record_id IN ({','.join('?' * len(records))})", [hi, *records]):
                acc = by_day.setdefault(day, [0, 0])
                acc[0] += net
                acc[1] += n
            out.append(totals_of(cust, by_day, since=lo))
        return out

    def backfill_value(self) -> int:
        """Once per store: ``value_days`` rows for the purchases kept before the aggregate existed (a store
        upgraded with history), so the customer-value report and the CLV model see them; how many rows."""
        c = self.db.conn()  # type: ignore[attr-defined]
        if self.get_mark(VALUE_BACKFILL_MARK) is not None:  # type: ignore[attr-defined]
            return 0
        # Only days the aggregate does not hold yet: a store whose purchases all went through it adds none.
        # Those purchases' refunds named no order (the refunds table keeps none): they are not subtracted.
        added = c.execute(
            "INSERT INTO value_days SELECT p.record_id, p.day, SUM(p.amount_minor), 0, COUNT(*) FROM purchases p"
            " WHERE NOT EXISTS (SELECT 1 FROM value_days v WHERE v.record_id = p.record_id AND v.day = p.day)"
            " GROUP BY p.record_id, p.day").rowcount
        self.put_mark(VALUE_BACKFILL_MARK, "1")  # type: ignore[attr-defined]
        if added:
            self.bump_value(None)
        return added

    def erase_value(self, ids: list[str], *, customers: Iterable[str] = ()) -> None:
        """Forget erased records' aggregate rows (``customers``: those they belonged to, whose totals change)."""
        c = self.db.conn()  # type: ignore[attr-defined]
        for part in _chunks(ids):
            q = ",".join("?" * len(part))
            c.execute(f"DELETE FROM value_days WHERE record_id IN ({q})", part)
            c.execute(f"DELETE FROM value_orders WHERE record_id IN ({q})", part)
        self.bump_value({*ids, *customers})
