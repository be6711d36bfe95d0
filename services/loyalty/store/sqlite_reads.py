"""Loyalty's SQLite adapter, the bulk reads a batch's settles start from: purchases, refunds, bonuses,
movements, records, ledger sums, accounts and checkpoints of many records or customers at once (a private
mixin of the adapter), with the decoded-purchase cache they share."""

from __future__ import annotations

import json
from decimal import Decimal

from services.loyalty.domain.model import Bonus, Entry, Line, Purchase, Refund
from services.loyalty.store import AccountRow, open_cause
from shared.clock import parse_iso
from shared.storage.base import chunks
from shared.storage.base import in_placeholders as _in

# Every settle reads the member's purchases again; a row decoded once (its JSON lines, its timestamp) is kept
# by its whole content, so an identical row gives an equal, immutable Purchase. Bounded: cleared when full.
_DECODED: dict[tuple, Purchase] = {}
_DECODED_KEPT = 20_000  # a few MB: the RSS budget (400 MB a process) matters more than the last hits


def _purchase(row: tuple) -> Purchase:
    held = _DECODED.get(row)
    if held is not None:
        return held
    source, pid, record, order, amount, _ms, time, day, lines = row
    out = Purchase(source, pid, record, order, amount, parse_iso(time), day,
                   tuple(Line(*ln) for ln in json.loads(lines)))
    if len(_DECODED) >= _DECODED_KEPT:
        _DECODED.clear()
    _DECODED[row] = out
    return out


# A batch reads the facts of all its customers at once: ids go to SQLite in chunks under its parameter cap,
# each chunk of sorted ids, so rows come back in the order one customer's own read gives them.
_CHUNK = 500


def _chunked(ids: list[str]) -> list[list[str]]:
    return list(chunks(sorted(set(ids)), _CHUNK)) if len(ids) > _CHUNK else [ids]


def _entry(row: tuple, keys) -> Entry:
    eid, record, bucket, rule, kind, points, eff, posted, cause = row
    return Entry(eid, record, bucket, rule, kind, points, eff, posted, open_cause(json.loads(cause), keys))


_ENTRY_COLS = "entry_id, record_id, bucket, rule, kind, points, effective_at, posted_at, cause"

# ``json.dumps(x, separators=...)`` builds an encoder on every call; a batch's settles write thousands of causes
# and views, each through these (the same text: a JSONEncoder holds no state between calls).
compact_json = json.JSONEncoder(separators=(",", ":")).encode
compact_json_str = json.JSONEncoder(separators=(",", ":"), default=str).encode  # what JSON cannot say, as str


class SqliteBulkReads:
    """Mixed into the sqlite adapter; uses the adapter's database and keyring."""

    def purchases_of(self, record_ids: list[str], *, since_ms: int | None = None) -> list[Purchase]:
        """Purchases of these records (made at or after ``since_ms``, if given)."""
        out = []
        for ids in _chunked(record_ids):
            q, args = f"SELECT * FROM purchases WHERE record_id IN ({_in(ids)})", list(ids)
            if since_ms is not None:
                q, args = q + " AND time_ms >= ?", [*args, since_ms]
            out += [_purchase(r) for r in self.db.conn().execute(q, args)]
        return out

    def purchases_for_orders(self, order_ids: list[str]) -> list[Purchase]:
        """Purchases with these order ids, whoever made them."""
        out = []
        for ids in _chunked(order_ids) if order_ids else []:
            rows = self.db.conn().execute(f"SELECT * FROM purchases WHERE order_id IN ({_in(ids)})", ids)
            out += [_purchase(r) for r in rows]
        return out

    def refunds_for_orders(self, order_ids: list[str]) -> list[Refund]:
        """Refunds of these orders, whoever asked for them."""
        out = []
        for ids in _chunked(order_ids) if order_ids else []:
            rows = self.db.conn().execute(f"SELECT * FROM refunds WHERE order_id IN ({_in(ids)})", ids)
            out += [Refund(s, i, rec, o, a, parse_iso(t)) for s, i, rec, o, a, t in rows]
        return out

    def bonuses_of(self, record_ids: list[str]) -> list[Bonus]:
        """Campaign grants to these records."""
        out = []
        for ids in _chunked(record_ids):
            rows = self.db.conn().execute(f"SELECT * FROM bonuses WHERE record_id IN ({_in(ids)})", ids)
            out += [Bonus(g, c, r, Decimal(m), parse_iso(s), parse_iso(e), bool(a), parse_iso(at))
                    for g, c, r, m, s, e, a, at in rows]
        return out

    def records_of_many(self, customer_ids: list[str]) -> dict[str, list[str]]:
        """What :meth:`records_of` answers for each of these customers, in one query per chunk."""
        more: dict[str, list[str]] = {c: [] for c in customer_ids}
        for ids in _chunked(customer_ids):
            rows = self.db.conn().execute(
                f"SELECT customer_id, record_id FROM memberships WHERE customer_id IN ({_in(ids)})"
                " AND record_id != customer_id ORDER BY customer_id, record_id", ids)
            for c, r in rows:
                more[c].append(r)
        return {c: [c, *rs] for c, rs in more.items()}

    def movements_of(self, record_ids: list[str]) -> list[Entry]:
        """Redemptions, cancellations and manual adjustments of these records."""
        out = []
        for ids in _chunked(record_ids):
            rows = self.db.conn().execute(
                f"SELECT {_ENTRY_COLS} FROM ledger WHERE record_id IN ({_in(ids)}) AND kind IN ('redeem', 'adjust')",
                ids)
            out += [_entry(r, self.keys) for r in rows]
        return out

    def balances_of(self, record_ids: list[str]) -> dict[str, int]:
        """The sum of each of these records' entries (records with none are left out)."""
        out: dict[str, int] = {}
        for ids in _chunked(record_ids):
            out.update(self.db.conn().execute(
                f"SELECT record_id, SUM(points) FROM ledger WHERE record_id IN ({_in(ids)}) GROUP BY record_id",
                ids).fetchall())
        return out

    def accounts_of(self, customer_ids: list[str]) -> dict[str, AccountRow]:
        """The account snapshots of these customers (those that have one)."""
        out = {}
        for ids in _chunked(customer_ids):
            for cid, bal, debt, tier, view, version, due, at in self.db.conn().execute(
                    f"SELECT * FROM accounts WHERE customer_id IN ({_in(ids)})", ids):
                out[cid] = AccountRow(cid, bal, debt, tier, json.loads(view), version, due, at)
        return out

    def checkpoints_of(self, customer_ids: list[str]) -> dict[str, str]:
        """The checkpoints kept for these customers (those that have one)."""
        out: dict[str, str] = {}
        for ids in _chunked(customer_ids):
            out.update(self.db.conn().execute(
                f"SELECT customer_id, state FROM checkpoints WHERE customer_id IN ({_in(ids)})", ids).fetchall())
        return out
