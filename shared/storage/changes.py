"""A store's log of changes (issue 16): a generation number and the ids each generation changed.

A reading kept in a process's memory (a ranking, a campaign's results, an index of customers' facts) is valid
while the store's generation is the one it was computed at. Every write the reading depends on bumps the
generation in the same transaction and logs which record and customer ids it touched (None: unknown, or
everything), so a kept reading is brought forward by computing again only the customers named since. Only the
last :data:`CHANGES_KEEP` generations' ids are kept: a reading kept further back is computed afresh.

One store may keep several logs, each by name (the name is the adapter's, never input): its tables are
``<log>_generation`` and ``<log>_changes`` (SQLite, schema :func:`changes_sql`), its collections the same (MongoDB).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from shared.storage.membership import Membership
from shared.storage.owners import OwnerRow

CHANGES_KEEP = 256  # generations whose changed ids are kept


def changes_sql(log: str) -> str:
    """The SQLite tables of the log named ``log``."""
    return (f"CREATE TABLE IF NOT EXISTS {log}_generation (id INTEGER PRIMARY KEY CHECK (id = 0),"
            f" n INTEGER NOT NULL);\nCREATE TABLE IF NOT EXISTS {log}_changes (generation INTEGER PRIMARY KEY,"
            " ids TEXT);\n")


class SqliteChanges:
    """Logs of changes in the service's SQLite file (needs ``self.db``; schema :func:`changes_sql` per log)."""

    db: object

    def bump_log(self, log: str, ids: Iterable[str] | None) -> None:
        """Note, in the writer's transaction, that what readings of ``log`` read has changed, and for which
        record or customer ids (None: unknown, a kept reading is then computed afresh)."""
        c = self.db.conn()  # type: ignore[attr-defined]
        n = c.execute(f"INSERT INTO {log}_generation VALUES (0, 1) ON CONFLICT(id) DO UPDATE SET n = n + 1"
                      " RETURNING n").fetchone()[0]
        c.execute(f"INSERT INTO {log}_changes VALUES (?, ?)",
                  (n, None if ids is None else json.dumps(sorted(set(ids)))))
        c.execute(f"DELETE FROM {log}_changes WHERE generation <= ?", (n - CHANGES_KEEP,))

    def log_generation(self, log: str) -> int:
        """How many times what readings of ``log`` read has changed (0: never): equal numbers, equal data."""
        row = self.db.conn().execute(f"SELECT n FROM {log}_generation").fetchone()  # type: ignore[attr-defined]
        return row[0] if row else 0

    def log_changes(self, log: str, *, after: int, upto: int) -> set[str] | None:
        """The record and customer ids changed by generations after..upto, or None when that is not known."""
        rows = self.db.conn().execute(  # type: ignore[attr-defined]
            f"SELECT ids FROM {log}_changes WHERE generation > ? AND generation <= ?", (after, upto)).fetchall()
        if len(rows) != upto - after or any(ids is None for ids, in rows):
            return None
        return {x for ids, in rows for x in json.loads(ids)}


class MongoChanges:
    """Logs of changes in the service's MongoDB database (needs ``self.mdb``): the same as :class:`SqliteChanges`."""

    mdb: object

    def bump_log(self, log: str, ids: Iterable[str] | None) -> None:
        """Note, in the writer's transaction, that what readings of ``log`` read has changed, and for which
        record or customer ids (None: unknown, a kept reading is then computed afresh)."""
        from pymongo import ReturnDocument

        n = self.mdb[f"{log}_generation"].find_one_and_update(  # type: ignore[index]
            {"_id": log}, {"$inc": {"n": 1}}, upsert=True, return_document=ReturnDocument.AFTER)["n"]
        changes = self.mdb[f"{log}_changes"]  # type: ignore[index]
        changes.insert_one({"_id": n, "ids": None if ids is None else sorted(set(ids))})
        changes.delete_many({"_id": {"$lte": n - CHANGES_KEEP}})

    def log_generation(self, log: str) -> int:
        """How many times what readings of ``log`` read has changed (0: never): equal numbers, equal data."""
        doc = self.mdb[f"{log}_generation"].find_one({"_id": log})  # type: ignore[index]
        return doc["n"] if doc else 0

    def log_changes(self, log: str, *, after: int, upto: int) -> set[str] | None:
        """The record and customer ids changed by generations after..upto, or None when that is not known."""
        docs = list(self.mdb[f"{log}_changes"].find({"_id": {"$gt": after, "$lte": upto}}))  # type: ignore[index]
        if len(docs) != upto - after or any(d["ids"] is None for d in docs):
            return None
        return {x for d in docs for x in d["ids"]}


class Regroups:
    """Wraps ``apply_memberships`` and ``put_owners`` of the store it is mixed into (placed before the membership
    and owner mixins), bumping the log named ``regroups_log``: a new record-to-customer mapping regroups
    customers (the records moved and the customers they left and joined are named), a new owner moves a
    customer between stores' readings."""

    regroups_log: str

    def apply_memberships(self, rows: Iterable[Membership]) -> set[str]:
        """Record newer mappings (see the membership mixin); a change is logged."""
        rows = list(rows)
        touched = super().apply_memberships(rows)  # type: ignore[misc]
        if touched:  # a record kept under its own id until its mapping came is regrouped too
            self.bump_log(self.regroups_log, touched | {m.record_id for m in rows})  # type: ignore[attr-defined]
        return touched

    def put_owners(self, rows: Iterable[OwnerRow]) -> None:
        """Keep each customer's newest owning store (see the owners mixin); the change is logged."""
        rows = list(rows)
        super().put_owners(rows)  # type: ignore[misc]
        if rows:
            self.bump_log(self.regroups_log, {r.customer_id for r in rows})  # type: ignore[attr-defined]
