"""Campaigns' embedded store: one SQLite file, WAL mode; audiences are evaluated set-based in SQL."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable
from typing import Any

from services.campaigns.domain.attribution import Enrolment
from services.campaigns.store import CampaignRow, MemberRow, TouchRow
from services.campaigns.store.changes import CHANGES_SQL, LogsChanges
from services.campaigns.store.leases import LEASES_SQL, SqliteLeases
from services.campaigns.store.sqlite_facts import SqliteFactReads
from services.campaigns.store.sqlite_receipts import RECEIPTS_SQL, SqliteReceipts
from shared.contract.facts import FieldValue, PurchaseFact, RefundFact
from shared.storage.base import OUTBOX_SQL
from shared.storage.changes import SqliteChanges
from shared.storage.fact_tables import ATTRIBUTES_SQL, compact_json, sqlite_put_attributes
from shared.storage.membership import MEMBERSHIP_SQL, SqliteMembership, anonymous_names
from shared.storage.outbox import SqliteStore
from shared.storage.owners import OWNERS_SQL, SqliteOwners

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS seen (source TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (source, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS purchases (
  source TEXT NOT NULL, id TEXT NOT NULL, record_id TEXT NOT NULL, order_id TEXT NOT NULL,
  amount_minor INTEGER NOT NULL, store_id TEXT, time_ms INTEGER NOT NULL, day TEXT NOT NULL,
  categories TEXT NOT NULL, PRIMARY KEY (source, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS purchases_record ON purchases(record_id, time_ms);
CREATE TABLE IF NOT EXISTS refunds (
  source TEXT NOT NULL, id TEXT NOT NULL, record_id TEXT NOT NULL, order_id TEXT NOT NULL,
  amount_minor INTEGER NOT NULL, time_ms INTEGER NOT NULL, PRIMARY KEY (source, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS refunds_record ON refunds(record_id);
CREATE TABLE IF NOT EXISTS tiers (
  customer_id TEXT PRIMARY KEY, tier TEXT, version TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS campaigns (
  id TEXT PRIMARY KEY, definition TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL, starts_at TEXT NOT NULL, ends_at TEXT NOT NULL, launched_at TEXT, launch TEXT,
  paused_from TEXT, last_error TEXT, idempotency_key TEXT UNIQUE, created_by TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS campaigns_status ON campaigns(status, starts_at);
CREATE TABLE IF NOT EXISTS members (
  campaign_id TEXT NOT NULL, member_id TEXT NOT NULL, grp TEXT NOT NULL, at_ms INTEGER NOT NULL,
  window_ms INTEGER NOT NULL, bucket INTEGER NOT NULL, tier TEXT, age_band TEXT NOT NULL, home_store TEXT,
  repeat_buyer INTEGER NOT NULL, purchases INTEGER, touches_before INTEGER, PRIMARY KEY (campaign_id, member_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_member ON members(member_id);
CREATE TABLE IF NOT EXISTS touches (
  touch_id TEXT PRIMARY KEY, campaign_id TEXT NOT NULL, customer_id TEXT NOT NULL, channel TEXT NOT NULL,
  at_ms INTEGER NOT NULL, step TEXT NOT NULL DEFAULT 'initial'
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS touches_at ON touches(at_ms);
CREATE INDEX IF NOT EXISTS touches_campaign ON touches(campaign_id);
CREATE INDEX IF NOT EXISTS touches_customer ON touches(customer_id);
CREATE TABLE IF NOT EXISTS view_state (
  customer_id TEXT PRIMARY KEY, version INTEGER NOT NULL, hash TEXT NOT NULL
) WITHOUT ROWID;
"""
    + MEMBERSHIP_SQL
    + OWNERS_SQL
    + LEASES_SQL
    + RECEIPTS_SQL
    + ATTRIBUTES_SQL
    + OUTBOX_SQL
    + CHANGES_SQL
)

_CAMPAIGN_COLS = ("id", "definition", "status", "created_at", "updated_at", "starts_at", "ends_at", "launched_at",
                  "launch", "paused_from", "last_error", "idempotency_key", "created_by")
_JSON_COLS = ("definition", "launch")
_MEMBER_COLS = ("campaign_id, member_id, grp, at_ms, window_ms, bucket, tier, age_band, home_store, repeat_buyer,"
                " purchases, touches_before")
# Columns added after the first release: (table, column, type), added to a file created before them.
_ADDED_COLUMNS = (("members", "purchases", "INTEGER"), ("members", "touches_before", "INTEGER"),
                  ("touches", "step", "TEXT NOT NULL DEFAULT 'initial'"),
                  ("receipts", "mismatched", "INTEGER NOT NULL DEFAULT 0"))



def _campaign(row: tuple) -> CampaignRow:
    values = dict(zip(_CAMPAIGN_COLS, row, strict=True))
    for col in _JSON_COLS:
        values[col] = json.loads(values[col]) if values[col] is not None else None
    return CampaignRow(**values)


class _SqliteCampaigns(SqliteFactReads, SqliteStore, SqliteMembership, SqliteLeases, SqliteOwners, SqliteReceipts,
                       SqliteChanges):
    """Campaigns data in SQLite; every write method runs inside the caller's transaction."""

    schema = SCHEMA

    def __init__(self, path, **options) -> None:
        super().__init__(path, **options)
        c = self.db.conn()
        for table, column, kind in _ADDED_COLUMNS:
            if column not in {r[1] for r in c.execute(f"PRAGMA table_info({table})")}:
                with self.db.transaction():
                    # Another process may have added it meanwhile: look again under the write lock.
                    if column not in {r[1] for r in c.execute(f"PRAGMA table_info({table})")}:
                        c.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def _wanted(self, ids: Iterable[str]) -> sqlite3.Connection:
        """This connection's scratch table of ids, filled with ``ids`` (joins instead of huge IN lists)."""
        c = self.db.conn()
        c.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (id TEXT PRIMARY KEY) WITHOUT ROWID")
        c.execute("DELETE FROM temp.wanted")
        c.executemany("INSERT OR IGNORE INTO temp.wanted VALUES (?)", ((i,) for i in ids))
        return c

    # -- facts ----------------------------------------------------------------------------
    def seen_first(self, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Note events as processed; returns the ``(source, id)`` pairs not seen before."""
        c, fresh = self.db.conn(), set()
        for key in keys:  # in-process: a statement per key costs microseconds, and tells which were new
            if c.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", key).rowcount == 1:
                fresh.add(key)
        return fresh

    def current_customers(self, ids: Collection[str]) -> dict[str, str]:
        """The customer each id belongs to now (an id never seen maps to itself)."""
        if not ids:  # a batch with no purchase or refund asks about nobody: not three statements for that
            return {}
        c = self._wanted(ids)
        found = dict(c.execute("SELECT w.id, m.customer_id FROM temp.wanted w"
                               " JOIN memberships m ON m.record_id = w.id"))
        return {i: found.get(i, i) for i in ids}

    def add_purchases(self, facts: list[PurchaseFact]) -> None:
        """Keep purchases (one already held changes nothing)."""
        self.db.conn().executemany(
            "INSERT OR IGNORE INTO purchases VALUES (?,?,?,?,?,?,?,?,?)",
            [(f.source, f.id, f.record_id, f.order_id, f.amount_minor, f.store_id, f.time_ms, f.day,
              compact_json(list(f.categories))) for f in facts])

    def add_refunds(self, facts: list[RefundFact]) -> None:
        """Keep refunds (one already held changes nothing)."""
        self.db.conn().executemany(
            "INSERT OR IGNORE INTO refunds VALUES (?,?,?,?,?,?)",
            [(f.source, f.id, f.record_id, f.order_id, f.amount_minor, f.time_ms) for f in facts])

    def put_attributes(self, values: list[tuple[str, list[FieldValue]]]) -> None:
        """Keep each record's field values where they are newer than the ones held."""
        sqlite_put_attributes(self.db.conn(), values, keys=self.keys)

    def put_tiers(self, rows: list[tuple[str, str | None, str]]) -> None:
        """Keep customers' loyalty tiers ``(customer, tier, version)`` where the version is newer."""
        self.db.conn().executemany(
            "INSERT INTO tiers VALUES (?,?,?) ON CONFLICT(customer_id) DO UPDATE SET tier = excluded.tier,"
            " version = excluded.version WHERE excluded.version > tiers.version", rows)

    # -- campaigns ------------------------------------------------------------------------
    def add_campaign(self, row: CampaignRow) -> None:
        """Store a new campaign."""
        values = [(compact_json(getattr(row, col)) if col in _JSON_COLS and getattr(row, col) is not None
                   else getattr(row, col)) for col in _CAMPAIGN_COLS]
        self.db.conn().execute(f"INSERT INTO campaigns ({', '.join(_CAMPAIGN_COLS)}) VALUES "
                               f"({', '.join('?' * len(_CAMPAIGN_COLS))})", values)

    def campaign(self, campaign_id: str) -> CampaignRow | None:
        """One campaign."""
        row = self.db.conn().execute(f"SELECT {', '.join(_CAMPAIGN_COLS)} FROM campaigns WHERE id = ?",
                                     (campaign_id,)).fetchone()
        return _campaign(row) if row else None

    def campaign_by_key(self, key: str) -> CampaignRow | None:
        """The campaign created with an idempotency key."""
        row = self.db.conn().execute(f"SELECT {', '.join(_CAMPAIGN_COLS)} FROM campaigns WHERE idempotency_key = ?",
                                     (key,)).fetchone()
        return _campaign(row) if row else None

    def campaigns(self, *, status: str | None, offset: int, limit: int) -> list[CampaignRow]:
        """Campaigns, newest first, optionally by status."""
        where, args = ("WHERE status = ?", [status]) if status else ("", [])
        rows = self.db.conn().execute(f"SELECT {', '.join(_CAMPAIGN_COLS)} FROM campaigns {where}"
                                      " ORDER BY created_at DESC, id LIMIT ? OFFSET ?", [*args, limit, offset])
        return [_campaign(r) for r in rows]

    def campaign_count(self, *, status: str | None) -> int:
        """How many campaigns, optionally by status."""
        where, args = ("WHERE status = ?", [status]) if status else ("", [])
        return self.db.conn().execute(f"SELECT COUNT(*) FROM campaigns {where}", args).fetchone()[0]

    def update_campaign(self, campaign_id: str, *, expect_status: str, **changes: Any) -> bool:
        """Change a campaign if its status is still ``expect_status``; False when it is not."""
        cols = list(changes)
        values = [compact_json(changes[c]) if c in _JSON_COLS and changes[c] is not None else changes[c] for c in cols]
        cur = self.db.conn().execute(
            f"UPDATE campaigns SET {', '.join(f'{c} = ?' for c in cols)} WHERE id = ? AND status = ?",
            [*values, campaign_id, expect_status])
        return cur.rowcount == 1

    def due(self, *, now: str) -> tuple[list[str], list[str]]:
        """Scheduled campaigns whose start has come, launched ones (running or paused) whose end has come."""
        c = self.db.conn()
        start = [r[0] for r in c.execute("SELECT id FROM campaigns WHERE status = 'scheduled' AND starts_at <= ?"
                                         " ORDER BY starts_at, id", (now,))]
        end = [r[0] for r in c.execute("SELECT id FROM campaigns WHERE (status = 'running' OR status = 'paused'"
                                       " AND launched_at IS NOT NULL) AND ends_at <= ? ORDER BY ends_at, id", (now,))]
        return start, end

    def campaign_names(self, ids: Collection[str]) -> dict[str, str]:
        """Names of campaigns by id."""
        c = self._wanted(ids)
        rows = c.execute("SELECT c.id, json_extract(c.definition, '$.name') FROM temp.wanted w"
                         " JOIN campaigns c ON c.id = w.id")
        return dict(rows)

    # -- audiences ------------------------------------------------------------------------
    def touch_counts(self, *, since_ms: int, until_ms: int) -> dict[str, int]:
        """Touches per customer (as they are now) in ``(since, until]``."""
        rows = self.db.conn().execute(
            "SELECT COALESCE(m.customer_id, t.customer_id), COUNT(*) FROM touches t LEFT JOIN memberships m"
            " ON m.record_id = t.customer_id WHERE t.at_ms > ? AND t.at_ms <= ? GROUP BY 1", (since_ms, until_ms))
        return dict(rows)

    def touch_times(self, *, customers: Collection[str] | None = None,
                    campaigns: Collection[str] | None = None) -> list[tuple[str, int, str]]:
        """Every touch as (its customer as they are now, its time, its campaign); only those of the ``customers``
        named, or of the ``campaigns`` named, when named."""
        c = self.db.conn()
        if customers is None:
            every = ("SELECT COALESCE(m.customer_id, t.customer_id), t.at_ms, t.campaign_id FROM {} t"
                     " LEFT JOIN memberships m ON m.record_id = t.customer_id")
            if campaigns is None:
                return c.execute(every.format("touches")).fetchall()
            self._wanted(campaigns)
            return c.execute(every.format("temp.wanted w CROSS JOIN touches")
                             + " WHERE t.campaign_id = w.id").fetchall()
        self._wanted(customers)
        # A customer's touches: those of its records, and those of its own id when no mapping names that id.
        return c.execute(
            "SELECT m.customer_id, t.at_ms, t.campaign_id FROM temp.wanted w CROSS JOIN memberships m"
            " ON m.customer_id = w.id CROSS JOIN touches t ON t.customer_id = m.record_id UNION ALL"
            " SELECT t.customer_id, t.at_ms, t.campaign_id FROM temp.wanted w CROSS JOIN touches t"
            " ON t.customer_id = w.id WHERE NOT EXISTS (SELECT 1 FROM memberships m WHERE m.record_id = t.customer_id)"
        ).fetchall()

    def add_members(self, rows: list[MemberRow]) -> None:
        """Freeze audience members (a re-sent member changes nothing)."""
        self.db.conn().executemany(
            f"INSERT OR IGNORE INTO members ({_MEMBER_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            [(r.campaign_id, r.member_id, r.group, r.at_ms, r.window_ms, r.bucket, r.tier, r.age_band, r.home_store,
              int(r.returning), r.purchases, r.touches_before) for r in rows])

    def add_touches(self, rows: list[TouchRow]) -> set[str]:
        """Record touches (a re-sent touch id changes nothing); returns the ids recorded now."""
        c = self._wanted(t.touch_id for t in rows)
        held = {r[0] for r in c.execute("SELECT t.touch_id FROM temp.wanted w JOIN touches t ON t.touch_id = w.id")}
        c.executemany("INSERT OR IGNORE INTO touches (touch_id, campaign_id, customer_id, channel, at_ms, step)"
                      " VALUES (?,?,?,?,?,?)",
                      [(t.touch_id, t.campaign_id, t.customer_id, t.channel, t.at_ms, t.step) for t in rows])
        return {t.touch_id for t in rows} - held

    def members(self, campaign_id: str, *, group: str | None = None, after: str | None = None,
                limit: int | None = None, owned_by: frozenset[str] | None = None) -> list[MemberRow]:
        """Members in member-id order, each with the customer it belongs to now (``owned_by``: only the
        members of customers those stores own)."""
        conds, args = ["x.campaign_id = ?"], [campaign_id]
        if owned_by is not None:
            cond, more = self.owned_sql("x.member_id", owned_by)
            conds.append(cond)
            args += more
        if group:
            conds.append("x.grp = ?")
            args.append(group)
        if after:
            conds.append("x.member_id > ?")
            args.append(after)
        tail = f" LIMIT {int(limit)}" if limit is not None else ""
        rows = self.db.conn().execute(
            f"SELECT {', '.join('x.' + c.strip() for c in _MEMBER_COLS.split(','))},"
            " COALESCE(m.customer_id, x.member_id) FROM members x LEFT JOIN memberships m ON m.record_id = x.member_id"
            f" WHERE {' AND '.join(conds)} ORDER BY x.member_id{tail}", args)
        return [MemberRow(*r[:9], bool(r[9]), r[12], purchases=r[10], touches_before=r[11]) for r in rows]

    def member_count(self, campaign_id: str, *, group: str | None = None,
                     owned_by: frozenset[str] | None = None) -> int:
        """How many members a campaign has, optionally in one group (and of customers ``owned_by`` stores)."""
        where, args = ("AND grp = ?", [group]) if group else ("", [])
        if owned_by is not None:
            cond, more = self.owned_sql("member_id", owned_by)
            where, args = f"{where} AND {cond}", [*args, *more]
        return self.db.conn().execute(f"SELECT COUNT(*) FROM members WHERE campaign_id = ? {where}",
                                      [campaign_id, *args]).fetchone()[0]

    def touch_count(self, campaign_id: str) -> int:
        """How many touches a campaign sent."""
        return self.db.conn().execute("SELECT COUNT(*) FROM touches WHERE campaign_id = ?",
                                      (campaign_id,)).fetchone()[0]

    # -- attribution and the customer view ------------------------------------------------
    def enrolments(self, customers: Collection[str]) -> list[Enrolment]:
        """Every campaign membership of these customers (through any of their records)."""
        c = self._wanted(customers)
        rows = c.execute(
            "SELECT x.campaign_id, x.member_id, m.customer_id, x.grp, x.at_ms, x.window_ms FROM temp.wanted w"
            " CROSS JOIN memberships m ON m.customer_id = w.id CROSS JOIN members x ON x.member_id = m.record_id")
        return [Enrolment(*r) for r in rows]

    def view_hashes(self, customers: Collection[str]) -> dict[str, str]:
        """The fingerprint of each customer's last published campaigns part."""
        c = self._wanted(customers)
        return dict(c.execute("SELECT v.customer_id, v.hash FROM temp.wanted w JOIN view_state v"
                              " ON v.customer_id = w.id"))

    def save_views(self, hashes: dict[str, str], *, floor: int = 0) -> dict[str, int]:
        """Record newly published parts; returns each customer's next version (one more than the last,
        at least ``floor``)."""
        c = self.db.conn()
        c.executemany("INSERT INTO view_state VALUES (?, max(1, ?), ?) ON CONFLICT(customer_id) DO UPDATE SET"
                      " version = max(view_state.version + 1, excluded.version), hash = excluded.hash",
                      [(cust, floor, h) for cust, h in hashes.items()])
        self._wanted(hashes)
        return dict(c.execute("SELECT v.customer_id, v.version FROM temp.wanted w JOIN view_state v"
                              " ON v.customer_id = w.id"))

    # -- issue 12, erasure (H4) ---------------------------------------------------------
    def erase_customer(self, customer_id: str, *, records: list[str], erasure_id: str, anon: str) -> list[str]:
        """Erase a customer: profile fields, tier and view state go; audience memberships, touches and the
        purchase and refund facts results count stay, each id renamed to an anonymous one (the same
        record -> customer shape), so every campaign's group sizes, conversions and sales stay exact.
        Returns the ids erased."""
        c = self.db.conn()
        ids = sorted({customer_id, *records, *self.records_of(customer_id)})
        renamed = anonymous_names(ids, customer_id=customer_id, anon=anon)
        q = ",".join("?" * len(ids))
        for table in ("attributes",):
            c.execute(f"DELETE FROM {table} WHERE record_id IN ({q})", ids)
        for table in ("tiers", "view_state"):
            c.execute(f"DELETE FROM {table} WHERE customer_id IN ({q})", ids)
        held = c.execute(f"SELECT record_id, customer_id, at FROM memberships WHERE record_id IN ({q})"
                         f" OR customer_id IN ({q})", ids + ids).fetchall()
        c.execute(f"DELETE FROM memberships WHERE record_id IN ({q}) OR customer_id IN ({q})", ids + ids)
        c.executemany("INSERT OR IGNORE INTO memberships VALUES (?,?,?)",
                      [(renamed.get(r, r), renamed.get(m, m), at) for r, m, at in held])
        pairs = list(renamed.items())
        c.executemany("UPDATE purchases SET record_id = ? WHERE record_id = ?", [(new, old) for old, new in pairs])
        c.executemany("UPDATE refunds SET record_id = ? WHERE record_id = ?", [(new, old) for old, new in pairs])
        c.executemany("UPDATE members SET member_id = ? WHERE member_id = ?", [(new, old) for old, new in pairs])
        c.executemany("UPDATE touches SET customer_id = ? WHERE customer_id = ?", [(new, old) for old, new in pairs])
        self.note_erased(ids, erasure_id=erasure_id)
        return ids


class SqliteCampaignsStore(LogsChanges, _SqliteCampaigns):
    """Campaigns data in SQLite, each write logged in the store's log of changes (``store.changes``)."""
