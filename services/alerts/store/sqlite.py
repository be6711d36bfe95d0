"""The alerts service's embedded store: one SQLite file, WAL mode, shared safely by several workers."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from datetime import date

from services.alerts.domain.facts import CustomerFacts
from services.alerts.domain.workflow import ACTIVE, Alert
from services.alerts.store import AlertQuery, Cover, ExpiryRow, LoyaltyRow, OccurrenceRow, StoredModel
from services.alerts.store.codec import FactRows, alert_doc, alert_of, assemble, model_doc, model_of, newest_loyalty
from services.alerts.store.sqlite_attendance import SqliteAttendance
from services.alerts.store.sqlite_clv import SqliteClv
from services.alerts.store.sqlite_kpi import SqliteKpi
from services.alerts.store.sqlite_satisfaction import SqliteSatisfaction
from services.alerts.store.sqlite_schema import ADDED_COLUMNS, ALERT_COLUMNS, SCHEMA
from services.alerts.store.sqlite_value import SqliteValue
from services.alerts.store.value_regroup import RegroupsValue
from shared.churn import ChurnModel
from shared.contract.facts import FieldValue, PurchaseFact, RefundFact
from shared.storage.base import in_placeholders as _in
from shared.storage.fact_tables import open_field, sqlite_put_attributes
from shared.storage.membership import SqliteMembership
from shared.storage.outbox import SqliteStore
from shared.storage.owners import SqliteOwners

_UPSERT_ALERT = (f"INSERT INTO alerts({','.join(ALERT_COLUMNS)}) VALUES ({','.join('?' * len(ALERT_COLUMNS))})"
                 " ON CONFLICT(alert_id) DO UPDATE SET "
                 + ", ".join(f"{c} = excluded.{c}" for c in ALERT_COLUMNS[1:]))
# SQLite's default limit on bound variables is 32,766; stay far below it.
_CHUNK = 900
# Microseconds from opening to resolution, exactly (times are fixed-width UTC text, the fraction at 21-26).
_TOOK_US = ("((strftime('%s', resolved_at) - strftime('%s', opened_at)) * 1000000"
            " + CAST(substr(resolved_at, 21, 6) AS INTEGER) - CAST(substr(opened_at, 21, 6) AS INTEGER))")


def _chunks(ids: list, size: int = _CHUNK):
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


class SqliteAlertsStore(RegroupsValue, SqliteStore, SqliteMembership, SqliteOwners,
                        SqliteClv, SqliteAttendance, SqliteSatisfaction, SqliteKpi, SqliteValue):  # issue 15: reports
    """Alerts data in SQLite; every write method runs inside the caller's transaction."""

    schema = SCHEMA

    def __init__(self, path, **options) -> None:
        super().__init__(path, **options)
        c = self.db.conn()
        for table, column, kind in ADDED_COLUMNS:
            if column not in {r[1] for r in c.execute(f"PRAGMA table_info({table})")}:
                try:
                    c.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                except sqlite3.OperationalError as exc:  # another worker added it first
                    if "duplicate column" not in str(exc):
                        raise
        self.kpi_backfill()  # issue 15: first purchase days of records kept before the KPI aggregates
        with self.transaction():
            self.backfill_value()  # issue 15: purchases kept before the customer-value aggregate

    # -- facts --------------------------------------------------------------------------
    def seen_events(self, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these channel events (source, id) were processed before."""
        out: set[tuple[str, str]] = set()
        for part in _chunks(keys, _CHUNK // 2):
            # The keys drive the join (CROSS JOIN keeps that order), each looked up by the primary key: a
            # row-value ``IN (VALUES ...)`` read every event ever seen, a cost that grew with the history.
            out |= set(self.db.conn().execute(
                f"WITH k(source, id) AS (VALUES {','.join(['(?,?)'] * len(part))}) SELECT e.source, e.id"
                " FROM k CROSS JOIN seen_events e ON e.source = k.source AND e.id = k.id",
                [x for k in part for x in k]))
        return out

    def add_events(self, keys: list[tuple[str, str]]) -> None:
        """Note channel events as processed."""
        self.db.conn().executemany("INSERT OR IGNORE INTO seen_events VALUES (?, ?)", keys)

    def add_purchases(self, rows: list[PurchaseFact]) -> None:
        """Purchases of records (and the customer-value aggregate, issue 15)."""
        fresh = self.fresh_facts("purchases", rows)
        self.db.conn().executemany("INSERT OR IGNORE INTO purchases VALUES (?,?,?,?,?,?)",
                                   [(r.source, r.id, r.record_id, r.day, r.store_id, r.amount_minor) for r in rows])
        self.kpi_add(rows, [])  # issue 15: the store KPIs' aggregates, in the same transaction
        self.keep_value_purchases(fresh)

    def add_refunds(self, rows: list[RefundFact]) -> None:
        """Refunds of records (and the customer-value aggregate, issue 15)."""
        fresh = self.fresh_facts("refunds", rows)
        self.db.conn().executemany("INSERT OR IGNORE INTO refunds VALUES (?,?,?,?)",
                                   [(r.source, r.id, r.record_id, r.amount_minor) for r in rows])
        self.kpi_add([], rows)  # issue 15: the store KPIs' aggregates, in the same transaction
        self.keep_value_refunds(fresh)

    def _new_keys(self, table: str, keys: list[str]) -> set[str]:
        held: set[str] = set()
        for part in _chunks(keys):
            held |= {r[0] for r in self.db.conn().execute(f"SELECT key FROM {table} WHERE key IN ({_in(part)})", part)}
        return set(keys) - held

    def add_occurrences(self, rows: list[OccurrenceRow]) -> set[str]:
        """Complaints, surveys, upgrades, expired points; returns the keys that were new."""
        new = self._new_keys("occurrences", [r.key for r in rows])
        self.db.conn().executemany("INSERT OR IGNORE INTO occurrences VALUES (?,?,?,?,?,?)", [
            (r.key, r.kind, r.record_id, r.at_ms, r.store_id, None if r.value is None else json.dumps(r.value))
            for r in rows if r.key in new])
        return new

    def add_expiries(self, rows: list[ExpiryRow]) -> set[str]:
        """Expiry announcements; returns the keys that were new."""
        new = self._new_keys("expiries", [r.key for r in rows])
        self.db.conn().executemany("INSERT OR IGNORE INTO expiries VALUES (?,?,?,?)",
                                   [(r.key, r.record_id, r.points, r.expires_ms) for r in rows if r.key in new])
        return new

    def put_attributes(self, items: list[tuple[str, list[FieldValue]]]) -> None:
        """Set fields of records where the value is newer than the one held."""
        sqlite_put_attributes(self.db.conn(), items, keys=self.keys)

    def put_loyalty(self, rows: list[LoyaltyRow]) -> list[LoyaltyRow]:
        """Loyalty's parts of records, each kept if newer than the one held; returns those kept."""
        ids = sorted({r.record_id for r in rows})
        held: dict[str, str] = {}
        for part in _chunks(ids):
            held.update(self.db.conn().execute(
                f"SELECT record_id, version FROM loyalty WHERE record_id IN ({_in(part)})", part))
        kept = newest_loyalty(rows, held)
        self.db.conn().executemany("INSERT OR REPLACE INTO loyalty VALUES (?,?,?,?)",
                                   [(r.record_id, r.tier, r.balance, r.version) for r in kept])
        return kept

    def customers_of(self, record_ids: list[str]) -> dict[str, str]:
        """The customer each record belongs to now (itself if never seen)."""
        out = {r: r for r in record_ids}
        for part in _chunks(record_ids):
            out.update(self.db.conn().execute(
                f"SELECT record_id, customer_id FROM memberships WHERE record_id IN ({_in(part)})", part))
        return out

    def merged_away(self, ids: list[str]) -> set[str]:
        """Which of these ids are records now part of another customer."""
        out: set[str] = set()
        for part in _chunks(ids):
            out |= {r[0] for r in self.db.conn().execute(
                f"SELECT record_id FROM memberships WHERE record_id IN ({_in(part)}) AND customer_id != record_id",
                part)}
        return out

    def members(self, customer_ids: list[str]) -> dict[str, str]:
        """Every record of these customers now, and the customer it belongs to (each customer's own included)."""
        out = {c: c for c in customer_ids}
        for part in _chunks(customer_ids):
            rows = self.db.conn().execute(
                f"SELECT record_id, customer_id FROM memberships WHERE customer_id IN ({_in(part)})", part)
            out.update({r: c for r, c in rows if r not in out})
        return out

    def facts(self, customer_ids: list[str]) -> dict[str, CustomerFacts]:
        """Each customer's facts, over every record that makes it up now (bulk reads)."""
        owner = self.members(customer_ids)
        rows = {c: FactRows([], [], 0, [], [], [], []) for c in customer_ids}
        c = self.db.conn()
        for part in _chunks(list(owner)):
            q = _in(part)
            for rec, day, store, amount in c.execute(
                    f"SELECT record_id, day, store_id, amount_minor FROM purchases WHERE record_id IN ({q})", part):
                rows[owner[rec]].purchases.append((day, store, amount))
            for rec, amount in c.execute(
                    f"SELECT record_id, SUM(amount_minor) FROM refunds WHERE record_id IN ({q}) GROUP BY record_id",
                    part):
                rows[owner[rec]].refunds += amount
            for key, kind, rec, at, store, value in c.execute(
                    f"SELECT * FROM occurrences WHERE record_id IN ({q})", part):
                rows[owner[rec]].occurrences.append(
                    OccurrenceRow(kind, key, rec, at, store, None if value is None else json.loads(value)))
            for key, rec, points, ms in c.execute(f"SELECT * FROM expiries WHERE record_id IN ({q})", part):
                rows[owner[rec]].expiries.append(ExpiryRow(key, rec, points, ms))
            attributes = c.execute(f"SELECT * FROM attributes WHERE record_id IN ({q})", part).fetchall()
            if attributes:  # the data keys of the records with fields to open, not of every record
                self.keys.load({r[0] for r in attributes})
            for rec, f, v, t, s, e in attributes:
                rows[owner[rec]].attributes.append(FieldValue(f, open_field(self.keys, rec, f, v), t, s, e))
            for rec, tier, balance, version in c.execute(f"SELECT * FROM loyalty WHERE record_id IN ({q})", part):
                rows[owner[rec]].loyalty.append(LoyaltyRow(rec, tier, balance, version))
        for part in _chunks(customer_ids):
            for cust, type_, at in c.execute(
                    f"SELECT customer_id, type, MAX(resolved_at) FROM alerts WHERE customer_id IN ({_in(part)})"
                    " AND status = 'resolved' AND resolution != 'merged' GROUP BY customer_id, type", part):
                rows[cust].last_resolved[type_] = at
        return {cust: assemble(cust, r) for cust, r in rows.items()}

    def purchase_days(self, *, until: date, customer_id: str | None = None) -> dict[str, list[date]]:
        """Distinct purchase days up to ``until`` of every customer (or one), through the membership mapping."""
        sql = ("SELECT DISTINCT COALESCE(m.customer_id, p.record_id) AS cust, p.day FROM purchases p"
               " LEFT JOIN memberships m ON m.record_id = p.record_id WHERE p.day <= ?")
        args: list = [until.isoformat()]
        if customer_id is not None:
            records = self.records_of(customer_id)
            sql += f" AND p.record_id IN ({_in(records)})"
            args += records
        out: dict[str, list[date]] = defaultdict(list)
        for cust, day in self.db.conn().execute(sql, args):
            out[customer_id or cust].append(date.fromisoformat(day))
        return dict(out)

    # -- alerts -------------------------------------------------------------------------
    def put_alerts(self, alerts: list[Alert]) -> None:
        """Insert or replace alerts."""
        rows = []
        for a in alerts:
            doc = alert_doc(a, keys=self.keys)
            doc["detail"] = json.dumps(doc["detail"], sort_keys=True)
            rows.append(tuple(doc[k] for k in ALERT_COLUMNS))
        # An upsert, not INSERT OR REPLACE: that would delete another active alert of the customer and type
        # to make room, where a second one must fail the unit of work instead.
        self.db.conn().executemany(_UPSERT_ALERT, rows)

    def cover(self, triggers: list[tuple[str, str]]) -> None:
        """Mark triggers as answered by an alert (taking them over from the one that answered them before)."""
        self.db.conn().executemany("INSERT OR REPLACE INTO alert_triggers VALUES (?, ?)", triggers)

    def covered(self, keys: list[str]) -> dict[str, Cover]:
        """Which of these triggers an alert answered already, and which alert."""
        out: dict[str, Cover] = {}
        for part in _chunks(keys):
            for key, alert_id, customer_id, status in self.db.conn().execute(
                    "SELECT t.key, t.alert_id, a.customer_id, a.status FROM alert_triggers t"
                    f" JOIN alerts a ON a.alert_id = t.alert_id WHERE t.key IN ({_in(part)})", part):
                out[key] = Cover(alert_id, customer_id, status in ACTIVE)
        return out

    def _alerts(self, where: str, args: list, tail: str = "") -> list[Alert]:
        rows = self.db.conn().execute(f"SELECT {','.join(ALERT_COLUMNS)} FROM alerts {where} {tail}", args)
        out = []
        for r in rows:
            doc = dict(zip(ALERT_COLUMNS, r, strict=True))
            doc["detail"] = json.loads(doc["detail"])
            out.append(alert_of(doc, keys=self.keys))
        return out

    def active_alerts(self, customer_ids: list[str]) -> list[Alert]:
        """Open and acknowledged alerts of these customers."""
        out: list[Alert] = []
        for part in _chunks(customer_ids):
            out += self._alerts(f"WHERE customer_id IN ({_in(part)}) AND status IN ('open', 'acknowledged')", part)
        return out

    def alerts_from(self, origin_ids: list[str]) -> list[Alert]:
        """Active or merge-folded alerts raised for these customers."""
        out: list[Alert] = []
        for part in _chunks(origin_ids):
            out += self._alerts(f"WHERE origin_id IN ({_in(part)}) AND (status IN ('open', 'acknowledged')"
                                " OR resolution = 'merged')", part)
        return out

    def alert(self, alert_id: str) -> Alert | None:
        """One alert."""
        found = self._alerts("WHERE alert_id = ?", [alert_id])
        return found[0] if found else None

    def find_alerts(self, query: AlertQuery, *, offset: int, limit: int) -> tuple[list[Alert], int]:
        """Alerts matching the filters, newest opened first, and how many match."""
        conds, args = [], []
        for name in ("status", "type", "severity", "store_id", "manager"):
            value = getattr(query, name)
            if value is not None:
                conds.append(f"{name} = ?")
                args.append(value)
        if query.customer_ids is not None:
            ids = list(query.customer_ids)
            conds.append(f"customer_id IN ({_in(ids)})")
            args += ids
        if query.sla is not None:
            late = []
            for severity, before in query.sla.opened_before.items():
                late.append(f"(severity = ? AND ((status != 'resolved' AND opened_at < ?)"
                            f" OR (status = 'resolved' AND {_TOOK_US} > ?)))")
                args += [severity, before, query.sla.limit_us[severity]]
            conds.append(f"{'' if query.sla.breached else 'NOT '}({' OR '.join(late)})")
        if query.owned_by is not None:
            cond, more = self.owned_sql("customer_id", query.owned_by)
            conds.append(cond)
            args += more
        where = f"WHERE {' AND '.join(conds)}" if conds else ""
        total = self.db.conn().execute(f"SELECT COUNT(*) FROM alerts {where}", args).fetchone()[0]
        items = self._alerts(where, [*args, limit, offset], "ORDER BY opened_at DESC, alert_id LIMIT ? OFFSET ?")
        return items, total

    def next_versions(self, customer_ids: list[str], *, floor: int = 0) -> dict[str, int]:
        """Advance and return each customer's view-part version: one more than the last, at least ``floor``."""
        c = self.db.conn()
        c.executemany("INSERT INTO view_versions VALUES (?, max(1, ?)) ON CONFLICT(customer_id)"
                      " DO UPDATE SET n = max(n + 1, excluded.n)", [(cust, floor) for cust in customer_ids])
        out: dict[str, int] = {}
        for part in _chunks(customer_ids):
            out.update(c.execute(f"SELECT customer_id, n FROM view_versions WHERE customer_id IN ({_in(part)})", part))
        return out

    # -- scheduling ---------------------------------------------------------------------
    def set_due(self, due: dict[str, int | None]) -> None:
        """When each customer needs a look next (None: only when a fact arrives)."""
        # An upsert that leaves an unchanged row alone: most customers evaluated keep their due time, and a
        # replaced row dirties its pages (table and index) for the commit to write out again.
        self.db.conn().executemany("INSERT INTO due VALUES (?, ?) ON CONFLICT(customer_id) DO UPDATE"
                                   " SET due_ms = excluded.due_ms WHERE due_ms IS NOT excluded.due_ms",
                                   list(due.items()))

    def due_customers(self, *, until_ms: int, limit: int) -> list[str]:
        """Customers due by ``until_ms``, earliest first."""
        rows = self.db.conn().execute(
            "SELECT customer_id FROM due WHERE due_ms <= ? ORDER BY due_ms, customer_id LIMIT ?", (until_ms, limit))
        return [r[0] for r in rows]

    def customers_after(self, after: str, *, limit: int) -> list[str]:
        """Every known customer in id order (a full rescan), after ``after``."""
        rows = self.db.conn().execute(
            "SELECT customer_id FROM due WHERE customer_id > ? ORDER BY customer_id LIMIT ?", (after, limit))
        return [r[0] for r in rows]

    def due_count(self, *, until_ms: int) -> int:
        """How many customers are due by ``until_ms``."""
        return self.db.conn().execute("SELECT COUNT(*) FROM due WHERE due_ms <= ?", (until_ms,)).fetchone()[0]

    def acquire_lease(self, name: str, *, owner: str, now_ms: int, ttl_ms: int) -> bool:
        """Hold lease ``name`` until now + ttl if it is free, expired or already ours."""
        with self.db.transaction() as c:
            cur = c.execute(
                "INSERT INTO leases VALUES (?,?,?) ON CONFLICT(name) DO UPDATE SET owner = excluded.owner,"
                " until_ms = excluded.until_ms WHERE leases.until_ms < ? OR leases.owner = excluded.owner",
                (name, owner, now_ms + ttl_ms, now_ms))
            return cur.rowcount == 1

    def get_mark(self, name: str) -> str | None:
        """A small piece of the scheduler's state (the rules last scanned with, a full scan's cursor)."""
        row = self.db.conn().execute("SELECT value FROM marks WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def put_mark(self, name: str, value: str) -> None:
        """Set a piece of the scheduler's state."""
        self.db.conn().execute("INSERT OR REPLACE INTO marks VALUES (?, ?)", (name, value))

    # -- churn model --------------------------------------------------------------------
    def put_model(self, model: ChurnModel, *, fitted_at: str) -> None:
        """Keep a fitted model for its as-of date."""
        self.db.conn().execute("INSERT OR REPLACE INTO models VALUES (?,?,?)",
                               (model.as_of.isoformat(), json.dumps(model_doc(model)), fitted_at))

    def model(self, as_of: date) -> StoredModel | None:
        """The model fitted as of a date, if any."""
        row = self.db.conn().execute("SELECT doc, fitted_at FROM models WHERE as_of = ?",
                                     (as_of.isoformat(),)).fetchone()
        return StoredModel(model_of(json.loads(row[0])), row[1]) if row else None

    def latest_model(self, *, until: date) -> StoredModel | None:
        """The model with the latest as-of date up to ``until``."""
        row = self.db.conn().execute("SELECT doc, fitted_at FROM models WHERE as_of <= ? ORDER BY as_of DESC LIMIT 1",
                                     (until.isoformat(),)).fetchone()
        return StoredModel(model_of(json.loads(row[0])), row[1]) if row else None

    # -- issue 12, erasure (H4) ---------------------------------------------------------
    def erase_customer(self, customer_id: str, *, records: list[str], erasure_id: str, anon: str) -> list[str]:
        """Erase a customer: facts, profile fields, free text, loyalty state, alerts and their schedule all
        go (alerts keep no totals that need them; ``anon`` is unused). Returns the ids erased."""
        c = self.db.conn()
        ids = sorted({customer_id, *records, *self.records_of(customer_id)})
        q = ",".join("?" * len(ids))
        for table in ("purchases", "refunds", "occurrences", "expiries", "loyalty", "attributes"):
            c.execute(f"DELETE FROM {table} WHERE record_id IN ({q})", ids)
        c.execute(f"DELETE FROM alert_triggers WHERE alert_id IN (SELECT alert_id FROM alerts"
                  f" WHERE customer_id IN ({q}))", ids)
        c.execute(f"DELETE FROM alerts WHERE customer_id IN ({q})", ids)
        for table in ("view_versions", "due"):
            c.execute(f"DELETE FROM {table} WHERE customer_id IN ({q})", ids)
        # Whom the mappings deleted below regroup: the customers these records still belong to here (one the
        # erasure does not name loses their days) and the records mapped to them (each left on its own): the
        # kept value report re-reads them.
        was = {*self.customers_of(ids).values(), *self.members(ids)}
        c.execute(f"DELETE FROM memberships WHERE record_id IN ({q}) OR customer_id IN ({q})", ids + ids)
        self.erase_attendance(ids)  # issue 15
        self.erase_satisfaction(ids)  # issue 15
        self.kpi_erase(ids)  # issue 15: per-record KPI rows go, store totals stay
        self.erase_value(ids, customers=was)
        self.note_erased(ids, erasure_id=erasure_id)
        return ids
