"""The audit log's rows in SQLite and MongoDB: appended once per ``audit_id``, read newest first, purged
only by retention. The one change an entry ever undergoes is an erasure masking the erased person's
names in the reasons of the entries about them (``*_audit_scrub``): who did what, when, stays as it was."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.access.audit import AuditEntry, AuditQuery

AUDIT_SQL = """
CREATE TABLE IF NOT EXISTS audit_log (
  audit_id TEXT PRIMARY KEY, at TEXT NOT NULL, service TEXT NOT NULL, actor TEXT NOT NULL, role TEXT NOT NULL,
  scope TEXT NOT NULL, action TEXT NOT NULL, customer_id TEXT, target TEXT, reason TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log(at, audit_id);
"""
_COLS = ("audit_id", "at", "service", "actor", "role", "scope", "action", "customer_id", "target", "reason")


def _where(query: AuditQuery, after: tuple[str, str] | None) -> tuple[str, list[Any]]:
    parts, args = [], []
    for col, value in (("actor", query.actor), ("customer_id", query.customer_id), ("action", query.action)):
        if value is not None:
            parts.append(f"{col} = ?")
            args.append(value)
    if query.since is not None:
        parts.append("at >= ?")
        args.append(query.since)
    if query.until is not None:
        parts.append("at < ?")
        args.append(query.until)
    if after is not None:
        parts.append("(at < ? OR (at = ? AND audit_id < ?))")
        args += [after[0], after[0], after[1]]
    return (" WHERE " + " AND ".join(parts)) if parts else "", args


def sqlite_audit_add(db: Any, entries: list[AuditEntry]) -> None:
    """Append entries; one already kept (the same ``audit_id`` delivered again) is left as it was."""
    with db.transaction() as c:
        c.executemany(f"INSERT INTO audit_log({','.join(_COLS)}) VALUES ({','.join('?' * len(_COLS))})"
                      " ON CONFLICT(audit_id) DO NOTHING", [tuple(getattr(e, k) for k in _COLS) for e in entries])


def sqlite_audit_find(db: Any, query: AuditQuery, *, after: tuple[str, str] | None, limit: int) -> list[AuditEntry]:
    """Entries matching ``query``, newest first, after the keyset position ``after``."""
    where, args = _where(query, after)
    rows = db.conn().execute(f"SELECT {','.join(_COLS)} FROM audit_log{where} ORDER BY at DESC, audit_id DESC"
                             " LIMIT ?", [*args, limit])
    return [AuditEntry(*row) for row in rows]


def sqlite_audit_purge(db: Any, *, before: str) -> int:
    """Delete entries older than ``before`` (retention); returns how many."""
    with db.transaction() as c:
        return c.execute("DELETE FROM audit_log WHERE at < ?", (before,)).rowcount


def sqlite_audit_scrub(db: Any, customer_ids: list[str], *, scrub: Callable[[str], str],
                      targets: list[str] | tuple[str, ...] = ()) -> int:
    """Rewrite through ``scrub`` (an erasure) the reasons of the entries about these customers, or acting on
    these ``targets`` (their conflicts: a conflict's entry names no customer); returns how many changed. Joins
    the caller's transaction."""
    if not customer_ids and not targets:
        return 0
    customers, acted_on = ",".join("?" * len(customer_ids)), ",".join("?" * len(targets))
    with db.transaction() as c:
        rows = c.execute(f"SELECT audit_id, reason FROM audit_log WHERE (customer_id IN ({customers})"
                         f" OR target IN ({acted_on})) AND reason IS NOT NULL",
                         [*customer_ids, *targets]).fetchall()
        changed = [(scrub(reason), audit_id) for audit_id, reason in rows if scrub(reason) != reason]
        c.executemany("UPDATE audit_log SET reason = ? WHERE audit_id = ?", changed)
    return len(changed)


def _filter(query: AuditQuery, after: tuple[str, str] | None) -> dict[str, Any]:
    q: dict[str, Any] = {k: v for k, v in (("actor", query.actor), ("customer_id", query.customer_id),
                                           ("action", query.action)) if v is not None}
    at: dict[str, str] = {}
    if query.since is not None:
        at["$gte"] = query.since
    if query.until is not None:
        at["$lt"] = query.until
    if at:
        q["at"] = at
    if after is not None:
        q = {"$and": [q, {"$or": [{"at": {"$lt": after[0]}}, {"at": after[0], "_id": {"$lt": after[1]}}]}]}
    return q


def mongo_audit_indexes(mdb: Any) -> None:
    """The index the audit listing reads by."""
    mdb["audit_log"].create_index([("at", -1), ("_id", -1)])


def mongo_audit_add(mdb: Any, entries: list[AuditEntry]) -> None:
    """Append entries; one already kept is left as it was (``$setOnInsert``: never an update)."""
    from pymongo import UpdateMany

    if entries:
        # UpdateMany on the unique _id is the same single-document upsert (mongomock cannot bulk UpdateOne).
        ops = [UpdateMany({"_id": e.audit_id}, {"$setOnInsert": {k: getattr(e, k) for k in _COLS[1:]}}, upsert=True)
               for e in entries]
        mdb["audit_log"].bulk_write(ops, ordered=True)


def mongo_audit_find(mdb: Any, query: AuditQuery, *, after: tuple[str, str] | None, limit: int) -> list[AuditEntry]:
    """Entries matching ``query``, newest first, after the keyset position ``after``."""
    cur = mdb["audit_log"].find(_filter(query, after)).sort([("at", -1), ("_id", -1)]).limit(limit)
    return [AuditEntry(d["_id"], *(d.get(k) for k in _COLS[1:])) for d in cur]


def mongo_audit_scrub(mdb: Any, customer_ids: list[str], *, scrub: Callable[[str], str],
                      targets: list[str] | tuple[str, ...] = ()) -> int:
    """Rewrite through ``scrub`` (an erasure) the reasons of the entries about these customers, or acting on
    these ``targets``; returns how many changed."""
    changed = 0
    which = {"$or": [{"customer_id": {"$in": list(customer_ids)}}, {"target": {"$in": list(targets)}}],
             "reason": {"$ne": None}}
    for doc in list(mdb["audit_log"].find(which, {"reason": 1})):
        kept = scrub(doc["reason"])
        if kept != doc["reason"]:
            mdb["audit_log"].update_one({"_id": doc["_id"]}, {"$set": {"reason": kept}})
            changed += 1
    return changed


def mongo_audit_purge(mdb: Any, *, before: str) -> int:
    """Delete entries older than ``before`` (retention); returns how many."""
    return mdb["audit_log"].delete_many({"at": {"$lt": before}}).deleted_count
