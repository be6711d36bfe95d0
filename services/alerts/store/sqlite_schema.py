"""The alerts service's SQLite schema: facts per record, alerts, the due index, the scheduler's state."""

from __future__ import annotations

from services.alerts.store.sqlite_attendance import ATTENDANCE_SQL
from services.alerts.store.sqlite_clv import CLV_SQL
from services.alerts.store.sqlite_kpi import KPI_SQL
from services.alerts.store.sqlite_satisfaction import SATISFACTION_SQL
from services.alerts.store.sqlite_value import VALUE_SQL
from shared.storage.base import OUTBOX_SQL
from shared.storage.fact_tables import ATTRIBUTES_SQL
from shared.storage.membership import MEMBERSHIP_SQL
from shared.storage.owners import OWNERS_SQL

ALERT_COLUMNS = (
    "alert_id", "customer_id", "type", "severity", "status", "store_id", "manager", "action", "opened_at",
    "updated_at", "last_trigger_at", "origin_id", "repeats", "detail", "acknowledged_by", "acknowledged_at",
    "resolved_by", "resolved_at", "resolution", "note", "merged_into", "folded", "prev_status", "acknowledged_note",
)

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS seen_events (source TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (source, id))
  WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS purchases (
  source TEXT NOT NULL, id TEXT NOT NULL, record_id TEXT NOT NULL, day TEXT NOT NULL, store_id TEXT,
  amount_minor INTEGER NOT NULL, PRIMARY KEY (source, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS purchases_record ON purchases(record_id, day);
CREATE TABLE IF NOT EXISTS refunds (
  source TEXT NOT NULL, id TEXT NOT NULL, record_id TEXT NOT NULL, amount_minor INTEGER NOT NULL,
  PRIMARY KEY (source, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS refunds_record ON refunds(record_id);
CREATE TABLE IF NOT EXISTS occurrences (
  key TEXT PRIMARY KEY, kind TEXT NOT NULL, record_id TEXT NOT NULL, at_ms INTEGER NOT NULL, store_id TEXT,
  value TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS occurrences_record ON occurrences(record_id);
CREATE TABLE IF NOT EXISTS expiries (
  key TEXT PRIMARY KEY, record_id TEXT NOT NULL, points INTEGER NOT NULL, expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS expiries_record ON expiries(record_id);
CREATE TABLE IF NOT EXISTS loyalty (
  record_id TEXT PRIMARY KEY, tier TEXT, balance INTEGER, version TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alerts (
  alert_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, type TEXT NOT NULL, severity TEXT NOT NULL,
  status TEXT NOT NULL, store_id TEXT, manager TEXT, action TEXT NOT NULL, opened_at TEXT NOT NULL,
  updated_at TEXT NOT NULL, last_trigger_at TEXT NOT NULL, origin_id TEXT NOT NULL, repeats INTEGER NOT NULL,
  detail TEXT NOT NULL, acknowledged_by TEXT, acknowledged_at TEXT, resolved_by TEXT, resolved_at TEXT,
  resolution TEXT, note TEXT, merged_into TEXT, folded INTEGER NOT NULL, prev_status TEXT, acknowledged_note TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alerts_customer ON alerts(customer_id, status, type);
CREATE INDEX IF NOT EXISTS alerts_origin ON alerts(origin_id);
CREATE INDEX IF NOT EXISTS alerts_status ON alerts(status, opened_at);
CREATE INDEX IF NOT EXISTS alerts_store ON alerts(store_id, status, opened_at);
-- One open alert per customer and type, whatever the order things arrived in: held by the store itself.
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_active ON alerts(customer_id, type)
  WHERE status IN ('open', 'acknowledged');
CREATE TABLE IF NOT EXISTS alert_triggers (key TEXT PRIMARY KEY, alert_id TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS view_versions (customer_id TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS due (customer_id TEXT PRIMARY KEY, due_ms INTEGER) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS due_next ON due(due_ms, customer_id);
CREATE TABLE IF NOT EXISTS models (as_of TEXT PRIMARY KEY, doc TEXT NOT NULL, fitted_at TEXT NOT NULL)
  WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, owner TEXT NOT NULL, until_ms INTEGER NOT NULL)
  WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS marks (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""
    + MEMBERSHIP_SQL
    + OWNERS_SQL
    + ATTRIBUTES_SQL
    + OUTBOX_SQL
    + CLV_SQL  # issue 15, clv
    + ATTENDANCE_SQL  # issue 15
    + SATISFACTION_SQL  # issue 15, satisfaction
    + KPI_SQL  # issue 15, kpi
    + VALUE_SQL
)

# Columns added since a file may have been created: (table, column, declaration), added when missing.
# Issue 15: value_orders.amount_minor stays NULL for orders kept before refunds were capped at the order.
ADDED_COLUMNS = (("alerts", "acknowledged_note", "TEXT"), ("value_orders", "amount_minor", "INTEGER"))
