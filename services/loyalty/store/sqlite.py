"""Loyalty's embedded store: one SQLite file, WAL mode, shared safely by several workers.

Writers take the lock up front (``BEGIN IMMEDIATE``), so a redemption's stock and balance checks
and its writes are serialized across threads and processes.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from services.loyalty.domain.model import DERIVED_KINDS, Bonus, Entry, Posted, Purchase, Refund
from services.loyalty.store import (
    AccountRow,
    Announcement,
    IdempotencyRow,
    RedemptionRow,
    RewardRow,
    open_note,
    opened_redemption,
    seal_cause,
    seal_note,
)
from services.loyalty.store.sqlite_corrections import CORRECTIONS_SQL, SqliteCorrections
from services.loyalty.store.sqlite_imports import IMPORTS_SQL, SqliteImports
from services.loyalty.store.sqlite_reads import (
    _ENTRY_COLS,
    SqliteBulkReads,
    _chunked,
    _entry,
    compact_json,
    compact_json_str,
)
from shared.clock import iso_utc
from shared.contract.facts import epoch_ms
from shared.storage.base import OUTBOX_SQL
from shared.storage.base import in_placeholders as _in
from shared.storage.membership import MEMBERSHIP_SQL, SqliteMembership
from shared.storage.outbox import SqliteStore
from shared.storage.owners import OWNERS_SQL, SqliteOwners

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS purchases (
  source TEXT NOT NULL, id TEXT NOT NULL, record_id TEXT NOT NULL, order_id TEXT NOT NULL,
  amount_minor INTEGER NOT NULL, time_ms INTEGER NOT NULL, time TEXT NOT NULL, day TEXT NOT NULL,
  lines TEXT NOT NULL, PRIMARY KEY (source, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS purchases_record_time ON purchases(record_id, time_ms);
CREATE INDEX IF NOT EXISTS purchases_order ON purchases(order_id);
CREATE TABLE IF NOT EXISTS refunds (
  source TEXT NOT NULL, id TEXT NOT NULL, record_id TEXT NOT NULL, order_id TEXT NOT NULL,
  amount_minor INTEGER NOT NULL, time TEXT NOT NULL, PRIMARY KEY (source, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS refunds_order ON refunds(order_id);
CREATE TABLE IF NOT EXISTS bonuses (
  grant_id TEXT PRIMARY KEY, campaign_id TEXT NOT NULL, record_id TEXT NOT NULL, multiplier TEXT NOT NULL,
  starts_at TEXT NOT NULL, ends_at TEXT NOT NULL, active INTEGER NOT NULL, at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS bonuses_record ON bonuses(record_id);
CREATE TABLE IF NOT EXISTS ledger (
  entry_id TEXT PRIMARY KEY, record_id TEXT NOT NULL, bucket TEXT NOT NULL, rule TEXT NOT NULL,
  kind TEXT NOT NULL, points INTEGER NOT NULL, effective_at TEXT NOT NULL, posted_at TEXT NOT NULL,
  cause TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ledger_bucket ON ledger(record_id, bucket, rule);
CREATE INDEX IF NOT EXISTS ledger_posted ON ledger(record_id, posted_at, entry_id);
-- Movements (redemptions, adjustments) by kind, and balances from the index alone.
CREATE INDEX IF NOT EXISTS ledger_kind ON ledger(record_id, kind, points);
CREATE TABLE IF NOT EXISTS accounts (
  customer_id TEXT PRIMARY KEY, balance INTEGER NOT NULL, debt INTEGER NOT NULL, tier TEXT,
  view TEXT NOT NULL, version INTEGER NOT NULL, next_due_ms INTEGER, updated_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS accounts_due ON accounts(next_due_ms);
CREATE TABLE IF NOT EXISTS checkpoints (customer_id TEXT PRIMARY KEY, state TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS announcements (
  announcement_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, expires_at TEXT NOT NULL,
  points INTEGER NOT NULL, at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS announcements_customer ON announcements(customer_id, expires_at);
CREATE TABLE IF NOT EXISTS rewards (
  reward_id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL, points_cost INTEGER NOT NULL,
  stock INTEGER NOT NULL, per_member_limit INTEGER, valid_from TEXT, valid_until TEXT,
  active INTEGER NOT NULL, created_at TEXT NOT NULL, redeemed INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS redemptions (
  redemption_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, record_id TEXT NOT NULL, reward_id TEXT NOT NULL,
  quantity INTEGER NOT NULL, points INTEGER NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL,
  by TEXT NOT NULL, cancelled_at TEXT, cancelled_by TEXT, cancel_reason TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS redemptions_record ON redemptions(record_id, reward_id);
CREATE TABLE IF NOT EXISTS idempotency (
  scope TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, status INTEGER NOT NULL,
  body TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (scope, key)
) WITHOUT ROWID;
"""
    + MEMBERSHIP_SQL
    + OWNERS_SQL
    + OUTBOX_SQL
    + CORRECTIONS_SQL
    + IMPORTS_SQL
)


_REWARD_COLS = ("reward_id, name, points_cost, stock, per_member_limit, valid_from, valid_until, active, created_at,"
                " description, redeemed")


def _reward(row: tuple) -> RewardRow:
    return RewardRow(*row[:7], bool(row[7]), *row[8:])


class SqliteLoyaltyStore(SqliteBulkReads, SqliteStore, SqliteMembership, SqliteOwners, SqliteCorrections,
                         SqliteImports):
    """Loyalty data in SQLite; every write method runs inside the caller's transaction."""

    schema = SCHEMA
    # A batch's reads take its ids in IN lists, one statement text per list length: a few hundred texts, which
    # sqlite3's default cache of 128 kept evicting, so most statements were compiled again for every batch.
    cached_statements = 1024

    def __init__(self, path, **options) -> None:
        super().__init__(path, **options)
        self.add_import_columns()

    def customers_of(self, record_ids: list[str]) -> dict[str, str]:
        """The customer each of these records belongs to now (itself if never seen), in one query."""
        if not record_ids:
            return {}
        rows = self.db.conn().execute(
            f"SELECT record_id, customer_id FROM memberships WHERE record_id IN ({_in(record_ids)})", record_ids)
        return {r: r for r in record_ids} | dict(rows.fetchall())

    def known(self, record_id: str) -> bool:
        """Whether identity ever told us about this record."""
        q = "SELECT 1 FROM memberships WHERE record_id = ?"
        return self.db.conn().execute(q, (record_id,)).fetchone() is not None

    # -- facts --------------------------------------------------------------------------
    def add_purchases(self, rows: list[Purchase]) -> list[Purchase]:
        """Keep purchases not seen before; returns the new ones."""
        return self._insert_new("purchases", rows, [
            (p.source, p.id, p.record_id, p.order_id, p.amount_minor, epoch_ms(p.time), iso_utc(p.time), p.day,
             json.dumps([list(vars(ln).values()) for ln in p.lines])) for p in rows])

    def add_refunds(self, rows: list[Refund]) -> list[Refund]:
        """Keep refunds not seen before; returns the new ones."""
        return self._insert_new("refunds", rows, [
            (r.source, r.id, r.record_id, r.order_id, r.amount_minor, iso_utc(r.time)) for r in rows])

    def _insert_new(self, table: str, facts: list, values: list[tuple]) -> list:
        # A batch's facts in a few statements (not one each): a multi-row INSERT OR IGNORE returns the keys it
        # inserted, and of a key given twice only the first is inserted, as one statement per fact would do.
        c, inserted = self.db.conn(), set()
        step = max(1, 900 // len(values[0])) if values else 1  # well under SQLite's bound variable cap
        for start in range(0, len(values), step):
            chunk = values[start:start + step]
            marks = ",".join([f"({','.join('?' * len(chunk[0]))})"] * len(chunk))
            inserted |= set(c.execute(f"INSERT OR IGNORE INTO {table} VALUES {marks} RETURNING source, id",
                                      [v for row in chunk for v in row]).fetchall())
        new = []
        for fact in facts:
            if (fact.source, fact.id) in inserted:
                inserted.discard((fact.source, fact.id))
                new.append(fact)
        return new

    def put_bonus(self, row: Bonus) -> bool:
        """Keep a campaign grant, the newest version per grant id; True when it changed anything."""
        cur = self.db.conn().execute(
            "INSERT INTO bonuses VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(grant_id) DO UPDATE SET"
            " campaign_id = excluded.campaign_id, record_id = excluded.record_id, multiplier = excluded.multiplier,"
            " starts_at = excluded.starts_at, ends_at = excluded.ends_at, active = excluded.active, at = excluded.at"
            " WHERE (excluded.at, 1 - excluded.active) > (bonuses.at, 1 - bonuses.active)",
            (row.grant_id, row.campaign_id, row.record_id, str(row.multiplier), iso_utc(row.starts_at),
             iso_utc(row.ends_at), int(row.active), iso_utc(row.at)))
        return cur.rowcount > 0

    # -- ledger -------------------------------------------------------------------------
    def add_entries(self, entries: list[Entry]) -> None:
        """Append entries; an entry id is unique, so nothing is ever posted twice."""
        self.db.conn().executemany(
            f"INSERT INTO ledger({_ENTRY_COLS}) VALUES (?,?,?,?,?,?,?,?,?)",
            [(e.entry_id, e.record_id, e.bucket, e.rule, e.kind, e.points, e.effective_at, e.posted_at,
              compact_json_str(seal_cause(e.cause, self.keys))) for e in entries])

    def posted(self, record_ids: list[str], *, buckets: list[str] | None = None) -> dict[tuple[str, str], Posted]:
        """What each derived bucket of these records (or only these buckets of them) adds up to now."""
        q = (f"SELECT bucket, rule, record_id, SUM(points), COUNT(*) FROM ledger WHERE record_id IN ({_in(record_ids)})"
             f" AND kind IN ({_in(list(DERIVED_KINDS))})")
        args = [*record_ids, *DERIVED_KINDS]
        if buckets is not None:
            q, args = q + f" AND bucket IN ({_in(buckets)})", [*args, *buckets]
        rows = self.db.conn().execute(q + " GROUP BY record_id, bucket, rule", args)
        return {(b, r): Posted(rec, s, n) for b, r, rec, s, n in rows}

    def posted_many(self, asks: dict[str, tuple[list[str], list[str] | None]]
                    ) -> dict[str, dict[tuple[str, str], Posted]]:
        """:meth:`posted` for each of several customers (customer -> (its records, its buckets or None)), in a
        few queries for all of them."""
        out: dict[str, dict[tuple[str, str], Posted]] = {c: {} for c in asks}
        for whole in (True, False):
            group: list[str] = []
            size = 0
            mine = [c for c, (_, buckets) in asks.items() if (buckets is None) == whole]
            for n, c in enumerate(mine):
                group.append(c)
                size += len(asks[c][0]) + len(asks[c][1] or ())
                if size > 2000 or n == len(mine) - 1:  # well under SQLite's bound variable cap
                    self._posted_of(group, asks, out)
                    group, size = [], 0
        return out

    def _posted_of(self, customers: list[str], asks: dict[str, tuple[list[str], list[str] | None]],
                   out: dict[str, dict[tuple[str, str], Posted]]) -> None:
        owner = {r: c for c in customers for r in asks[c][0]}
        records = list(owner)
        q = (f"SELECT record_id, bucket, rule, SUM(points), COUNT(*) FROM ledger WHERE record_id IN ({_in(records)})"
             f" AND kind IN ({_in(list(DERIVED_KINDS))})")
        args = [*records, *DERIVED_KINDS]
        scope = {c: set(asks[c][1]) for c in customers if asks[c][1] is not None}
        if scope:
            buckets = sorted(set().union(*scope.values()))
            q, args = q + f" AND bucket IN ({_in(buckets)})", [*args, *buckets]
        for rec, b, r, total, n in self.db.conn().execute(q + " GROUP BY record_id, bucket, rule", args):
            c = owner[rec]
            if c not in scope or b in scope[c]:
                out[c][(b, r)] = Posted(rec, total, n)

    def balance(self, record_ids: list[str], *, before: str | None = None) -> int:
        """The sum of these records' entries (posted before ``before``, if given)."""
        q = f"SELECT COALESCE(SUM(points), 0) FROM ledger WHERE record_id IN ({_in(record_ids)})"
        args: list[Any] = list(record_ids)
        if before is not None:
            q += " AND posted_at < ?"
            args.append(before)
        return self.db.conn().execute(q, args).fetchone()[0]

    def entries(self, record_ids: list[str], *, before: tuple[str, str] | None, limit: int) -> list[Entry]:
        """Entries newest first, after a keyset cursor ``(posted_at, entry_id)``."""
        cond, args = "", list(record_ids)
        if before is not None:
            cond = " AND (posted_at, entry_id) < (?, ?)"
            args += list(before)
        rows = self.db.conn().execute(
            f"SELECT {_ENTRY_COLS} FROM ledger WHERE record_id IN ({_in(record_ids)}){cond}"
            " ORDER BY posted_at DESC, entry_id DESC LIMIT ?", [*args, limit])
        return [_entry(r, self.keys) for r in rows]

    def entries_posted(self, record_ids: list[str], *, start: str, end: str) -> list[Entry]:
        """Entries posted in ``[start, end)``."""
        rows = self.db.conn().execute(
            f"SELECT {_ENTRY_COLS} FROM ledger WHERE record_id IN ({_in(record_ids)}) AND posted_at >= ?"
            " AND posted_at < ? ORDER BY posted_at, entry_id", [*record_ids, start, end])
        return [_entry(r, self.keys) for r in rows]

    # -- accounts -----------------------------------------------------------------------
    def account(self, customer_id: str) -> AccountRow | None:
        """The account snapshot."""
        row = self.db.conn().execute("SELECT * FROM accounts WHERE customer_id = ?", (customer_id,)).fetchone()
        if row is None:
            return None
        cid, bal, debt, tier, view, version, due, at = row
        return AccountRow(cid, bal, debt, tier, json.loads(view), version, due, at)

    def put_account(self, row: AccountRow) -> None:
        """Write the snapshot."""
        self.put_accounts([row])

    def put_accounts(self, rows: list[AccountRow]) -> None:
        """Write these snapshots (a batch's settles), in one statement."""
        self.db.conn().executemany(
            "INSERT OR REPLACE INTO accounts VALUES (?,?,?,?,?,?,?,?)",
            [(row.customer_id, row.balance, row.debt, row.tier, compact_json(row.view),
              row.version, row.next_due_ms, row.updated_at) for row in rows])

    def debit_balance(self, customer_id: str, points: int) -> bool:
        """Take points off the snapshot if it holds them; False (and no change) otherwise."""
        cur = self.db.conn().execute(
            "UPDATE accounts SET balance = balance - ? WHERE customer_id = ? AND balance >= ?",
            (points, customer_id, points))
        return cur.rowcount == 1

    def checkpoint(self, customer_id: str) -> str | None:
        """The account's checkpoint (JSON text), if one was kept."""
        row = self.db.conn().execute("SELECT state FROM checkpoints WHERE customer_id = ?", (customer_id,)).fetchone()
        return row[0] if row else None

    def put_checkpoint(self, customer_id: str, state: str) -> None:
        """Keep the account's checkpoint, replacing the one before."""
        self.put_checkpoints({customer_id: state})

    def put_checkpoints(self, states: dict[str, str]) -> None:
        """Keep these accounts' checkpoints (customer -> state), replacing the ones before, in one statement."""
        self.db.conn().executemany("INSERT OR REPLACE INTO checkpoints VALUES (?, ?)", list(states.items()))

    def due_accounts(self, now_ms: int, *, limit: int) -> list[str]:
        """Accounts with an expiry, announcement or review due by ``now_ms``."""
        rows = self.db.conn().execute(
            "SELECT customer_id FROM accounts WHERE next_due_ms <= ? ORDER BY next_due_ms LIMIT ?", (now_ms, limit))
        return [r[0] for r in rows]

    def account_count(self) -> int:
        """How many accounts there are."""
        return self.db.conn().execute("SELECT COUNT(*) FROM accounts").fetchone()[0]

    def announced(self, customer_id: str, expires_at: list[str]) -> dict[str, int]:
        """The most points already announced to a customer per expiry moment, for these moments."""
        if not expires_at:
            return {}
        rows = self.db.conn().execute(
            "SELECT expires_at, MAX(points) FROM announcements WHERE customer_id = ?"
            f" AND expires_at IN ({_in(expires_at)}) GROUP BY expires_at", [customer_id, *expires_at])
        return dict(rows.fetchall())

    def announced_many(self, asks: dict[str, list[str]]) -> dict[str, dict[str, int]]:
        """:meth:`announced` for each of several customers (customer -> its expiry moments), in one query per
        chunk of customers (a batch's settles ask once, not once a customer)."""
        out: dict[str, dict[str, int]] = {c: {} for c in asks}
        wanted = {c: set(moments) for c, moments in asks.items() if moments}
        for ids in _chunked(list(wanted)) if wanted else []:
            for c, at, n in self.db.conn().execute(
                    "SELECT customer_id, expires_at, MAX(points) FROM announcements"
                    f" WHERE customer_id IN ({_in(ids)}) GROUP BY customer_id, expires_at", ids):
                if at in wanted[c]:
                    out[c][at] = n
        return out

    def add_announcements(self, rows: list[Announcement]) -> None:
        """Remember announcements made."""
        self.db.conn().executemany("INSERT OR IGNORE INTO announcements VALUES (?,?,?,?,?)",
                                   [tuple(vars(a).values()) for a in rows])

    # -- rewards and redemptions --------------------------------------------------------
    def add_reward(self, row: RewardRow) -> None:
        """A new reward in the catalogue."""
        self.db.conn().execute(
            f"INSERT INTO rewards({_REWARD_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (row.reward_id, row.name, row.points_cost, row.stock, row.per_member_limit, row.valid_from,
             row.valid_until, int(row.active), row.created_at, row.description, row.redeemed))

    def reward(self, reward_id: str) -> RewardRow | None:
        """One reward."""
        row = self.db.conn().execute(f"SELECT {_REWARD_COLS} FROM rewards WHERE reward_id = ?", (reward_id,)).fetchone()
        return _reward(row) if row else None

    def rewards(self, *, active_only: bool, offset: int, limit: int) -> list[RewardRow]:
        """The catalogue, oldest first."""
        where = "WHERE active = 1" if active_only else ""
        rows = self.db.conn().execute(
            f"SELECT {_REWARD_COLS} FROM rewards {where} ORDER BY created_at, reward_id LIMIT ? OFFSET ?",
            (limit, offset))
        return [_reward(r) for r in rows]

    def update_reward(self, reward_id: str, *, changes: dict[str, Any], add_stock: int = 0) -> bool:
        """Change a reward's fields and add to its stock; False when it does not exist."""
        sets = [f"{k} = ?" for k in changes] + ["stock = stock + ?"]
        args = [int(v) if isinstance(v, bool) else v for v in changes.values()] + [add_stock, reward_id]
        cur = self.db.conn().execute(f"UPDATE rewards SET {', '.join(sets)} WHERE reward_id = ?", args)
        return cur.rowcount == 1

    def take_stock(self, reward_id: str, quantity: int) -> bool:
        """Take stock if there is enough; False (and no change) otherwise."""
        cur = self.db.conn().execute(
            "UPDATE rewards SET stock = stock - ?, redeemed = redeemed + ? WHERE reward_id = ? AND stock >= ?",
            (quantity, quantity, reward_id, quantity))
        return cur.rowcount == 1

    def return_stock(self, reward_id: str, quantity: int) -> None:
        """Put stock back (a cancelled redemption)."""
        self.db.conn().execute("UPDATE rewards SET stock = stock + ?, redeemed = redeemed - ? WHERE reward_id = ?",
                               (quantity, quantity, reward_id))

    def add_redemption(self, row: RedemptionRow) -> None:
        """Record a redemption."""
        self.db.conn().execute("INSERT INTO redemptions VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", tuple(vars(row).values()))

    def redemption(self, redemption_id: str) -> RedemptionRow | None:
        """One redemption."""
        row = self.db.conn().execute("SELECT * FROM redemptions WHERE redemption_id = ?", (redemption_id,)).fetchone()
        return opened_redemption(RedemptionRow(*row), self.keys) if row else None

    def redemptions_of(self, record_ids: list[str], *, offset: int, limit: int) -> list[RedemptionRow]:
        """Redemptions of these records, newest first."""
        rows = self.db.conn().execute(
            f"SELECT * FROM redemptions WHERE record_id IN ({_in(record_ids)})"
            " ORDER BY created_at DESC, redemption_id DESC LIMIT ? OFFSET ?", [*record_ids, limit, offset])
        return [opened_redemption(RedemptionRow(*r), self.keys) for r in rows]

    def redeemed_count(self, record_ids: list[str], reward_id: str) -> int:
        """How many of a reward these records hold (cancelled ones do not count)."""
        return self.db.conn().execute(
            f"SELECT COALESCE(SUM(quantity), 0) FROM redemptions WHERE record_id IN ({_in(record_ids)})"
            " AND reward_id = ? AND status = 'completed'", [*record_ids, reward_id]).fetchone()[0]

    def cancel_redemption(self, redemption_id: str, *, at: str, by: str, reason: str) -> bool:
        """Mark a completed redemption cancelled; False when it was not completed."""
        cur = self.db.conn().execute(
            "UPDATE redemptions SET status = 'cancelled', cancelled_at = ?, cancelled_by = ?, cancel_reason = ?"
            " WHERE redemption_id = ? AND status = 'completed'",
            (at, by, seal_note(self.keys, "cancel_reason", reason), redemption_id))
        return cur.rowcount == 1

    def idempotent(self, scope: str, key: str) -> IdempotencyRow | None:
        """The answer already given to this key, if any."""
        row = self.db.conn().execute("SELECT * FROM idempotency WHERE scope = ? AND key = ?", (scope, key)).fetchone()
        return IdempotencyRow(*row[:4], open_note(self.keys, "idempotency.body", row[4]), row[5]) if row else None

    def put_idempotent(self, row: IdempotencyRow) -> None:
        """Remember the answer given to a key."""
        # The answer repeats the request's reason (a staff note): sealed like it.
        sealed = replace(row, body=seal_note(self.keys, "idempotency.body", row.body))
        self.db.conn().execute("INSERT INTO idempotency VALUES (?,?,?,?,?,?)", tuple(vars(sealed).values()))

    # -- issue 12, erasure (H4) ---------------------------------------------------------
    def erase_customer(self, customer_id: str, *, records: list[str], erasure_id: str, anon: str) -> list[str]:
        """Erase a customer: the ledger and redemptions stay, filed under ``anon`` with no reason text (so
        every total of points issued, spent and expired stays exact); facts, account, schedule,
        announcements, memberships and idempotency answers go. Returns the ids erased."""
        c = self.db.conn()
        ids = sorted({customer_id, *records, *self.records_of(customer_id)})
        q = ",".join("?" * len(ids))
        c.execute(f"UPDATE ledger SET record_id = ?, cause = '{{}}' WHERE record_id IN ({q})", [anon, *ids])
        c.execute(f"UPDATE redemptions SET customer_id = ?, record_id = ?, cancel_reason = NULL"
                  f" WHERE record_id IN ({q}) OR customer_id IN ({q})", [anon, anon, *ids, *ids])
        for table in ("purchases", "refunds", "bonuses", "tier_imports"):
            c.execute(f"DELETE FROM {table} WHERE record_id IN ({q})", ids)
        for table in ("accounts", "checkpoints", "announcements"):
            c.execute(f"DELETE FROM {table} WHERE customer_id IN ({q})", ids)
        c.execute(f"DELETE FROM memberships WHERE record_id IN ({q}) OR customer_id IN ({q})", ids + ids)
        scopes = [f"{kind}:{i}" for kind in ("redeem", "adjust") for i in ids]
        c.execute(f"DELETE FROM idempotency WHERE scope IN ({','.join('?' * len(scopes))})", scopes)
        self.erase_corrections(ids)
        self.note_erased(ids, erasure_id=erasure_id)
        return ids
