"""Which customer each identity record belongs to, as every downstream service keeps it.

Identity publishes every event with the record it belongs to (``record_id``) and the customer that
record is part of when the event was resolved (``customer_id``), and every merge and unmerge with
the records it moved. A service that keeps its facts per *record* and this mapping beside them can
follow merges and undo them exactly: a customer's facts are the facts of its records.

The mapping is last-writer-wins per record by identity's timestamp, so merges, unmerges and
events may arrive in any order, any number of times, and the mapping ends the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shared.clock import iso_utc
from shared.contract.messages import CustomerEventResolved, CustomerMerged


@dataclass(frozen=True)
class Membership:
    """Record ``record_id`` belongs to customer ``customer_id`` as of ``at`` (identity's time)."""

    record_id: str
    customer_id: str
    at: str


def newest_per_record(rows: Iterable[Membership]) -> dict[str, Membership]:
    """Of several mappings of one record, the one identity wrote last (ties: the first given)."""
    out: dict[str, Membership] = {}
    for m in rows:
        held = out.get(m.record_id)
        if held is None or m.at > held.at:
            out[m.record_id] = m
    return out


def fold_runs(held: dict[str, tuple[str, str]],
              runs: list[list[Membership]]) -> tuple[list[set[str]], dict[str, tuple[str, str]]]:
    """Runs of mappings applied in turn to ``held`` (record -> (customer, at), updated in place), as one
    store call each would apply them: the customers each run changed, and every record's row to write."""
    touched_by_run: list[set[str]] = []
    changed: dict[str, tuple[str, str]] = {}
    for rows in runs:
        touched: set[str] = set()
        for rid, m in newest_per_record(rows).items():
            old = held.get(rid)
            if old is None or m.at > old[1]:
                if old is None:
                    touched.add(m.customer_id)
                elif old[0] != m.customer_id:
                    touched |= {old[0], m.customer_id}
                held[rid] = changed[rid] = (m.customer_id, m.at)
        touched_by_run.append(touched)
    return touched_by_run, changed


def memberships_of(message: CustomerEventResolved | CustomerMerged) -> list[Membership]:
    """What a message from identity says about which records belong to which customer."""
    if isinstance(message, CustomerEventResolved):
        at = iso_utc(message.resolved_at)
        return [Membership(message.record_id, message.customer_id, at),
                Membership(message.customer_id, message.customer_id, at)]
    at = iso_utc(message.at)
    owner = message.survivor_id if message.kind == "customer.merged" else message.merged_id
    rows = [Membership(r, owner, at) for r in message.records]
    if message.kind == "customer.merged":
        rows.append(Membership(message.survivor_id, message.survivor_id, at))
    return rows


MEMBERSHIP_SQL = """
CREATE TABLE IF NOT EXISTS memberships (
  record_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS memberships_customer ON memberships(customer_id);
"""


class SqliteMembership:
    """The mapping in the service's SQLite file (needs ``self.db``; schema :data:`MEMBERSHIP_SQL`)."""

    db: object

    def apply_memberships(self, rows: Iterable[Membership]) -> set[str]:
        """Record newer mappings; returns every customer whose set of records changed (old and new)."""
        return self.apply_membership_runs([list(rows)])[0]

    def apply_membership_runs(self, runs: list[list[Membership]]) -> list[set[str]]:
        """:meth:`apply_memberships` of each run in turn (one per message of a batch, say), in one read and
        one write; the customers each run changed."""
        c = self.db.conn()  # type: ignore[attr-defined]
        held: dict[str, tuple[str, str]] = {}
        ids = list({m.record_id: None for rows in runs for m in rows})
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for rid, cid, at in c.execute(
                    f"SELECT record_id, customer_id, at FROM memberships WHERE record_id IN ({marks})", chunk):
                held[rid] = (cid, at)
        touched, changed = fold_runs(held, runs)
        c.executemany("INSERT INTO memberships VALUES (?,?,?) ON CONFLICT(record_id) DO UPDATE SET"
                      " customer_id = excluded.customer_id, at = excluded.at WHERE excluded.at > memberships.at",
                      [(rid, cid, at) for rid, (cid, at) in changed.items()])
        return touched

    def customer_of(self, record_id: str) -> str:
        """The customer a record belongs to now (itself if never seen)."""
        row = self.db.conn().execute(  # type: ignore[attr-defined]
            "SELECT customer_id FROM memberships WHERE record_id = ?", (record_id,)).fetchone()
        return row[0] if row else record_id

    def records_of(self, customer_id: str) -> list[str]:
        """The records that make up a customer now (the customer's own record first)."""
        rows = self.db.conn().execute(  # type: ignore[attr-defined]
            "SELECT record_id FROM memberships WHERE customer_id = ? AND record_id != ? ORDER BY record_id",
            (customer_id, customer_id))
        return [customer_id, *(r[0] for r in rows)]


class MongoMembership:
    """The mapping in the service's MongoDB database (needs ``self.mdb``)."""

    mdb: object

    def create_membership_indexes(self) -> None:
        """The index ``records_of`` relies on (call once when the store opens)."""
        self.mdb["memberships"].create_index("customer_id")  # type: ignore[attr-defined]

    def apply_memberships(self, rows: Iterable[Membership]) -> set[str]:
        """Record newer mappings; returns every customer whose set of records changed (old and new)."""
        return self.apply_membership_runs([list(rows)])[0]

    def apply_membership_runs(self, runs: list[list[Membership]]) -> list[set[str]]:
        """:meth:`apply_memberships` of each run in turn (one per message of a batch, say), in one read and
        one bulk write; the customers each run changed."""
        # UpdateMany on the unique _id is one document, as UpdateOne would be; mongomock's bulk_write
        # accepts only the former with this pymongo (mongomock#912).
        from pymongo import UpdateMany

        coll = self.mdb["memberships"]  # type: ignore[attr-defined]
        ids = list({m.record_id: None for rows in runs for m in rows})
        if not ids:
            return [set() for _ in runs]
        read = {d["_id"]: (d["customer_id"], d["at"]) for d in coll.find({"_id": {"$in": ids}})}
        touched, changed = fold_runs(dict(read), runs)
        ops = []
        for rid, (cid, at) in changed.items():
            old = read.get(rid)
            if old is None:
                ops.append(UpdateMany({"_id": rid}, {"$setOnInsert": {"customer_id": cid, "at": at}}, upsert=True))
            else:
                # Conditional on what was read: a concurrent newer write wins, and a transaction retries.
                ops.append(UpdateMany({"_id": rid, "at": old[1]}, {"$set": {"customer_id": cid, "at": at}}))
        if ops:
            coll.bulk_write(ops, ordered=False)
        return touched

    def customer_of(self, record_id: str) -> str:
        """The customer a record belongs to now (itself if never seen)."""
        doc = self.mdb["memberships"].find_one({"_id": record_id})  # type: ignore[attr-defined]
        return doc["customer_id"] if doc else record_id

    def records_of(self, customer_id: str) -> list[str]:
        """The records that make up a customer now (the customer's own record first)."""
        cur = self.mdb["memberships"].find(  # type: ignore[attr-defined]
            {"customer_id": customer_id, "_id": {"$ne": customer_id}}).sort("_id", 1)
        return [customer_id, *(d["_id"] for d in cur)]


def anonymous_names(ids: Iterable[str], *, customer_id: str, anon: str) -> dict[str, str]:
    """Issue 12: the anonymous name of each id of an erased customer, the customer ``anon`` and each other
    record ``anon.n``, so facts kept under them keep their record -> customer shape."""
    others = sorted(set(ids) - {customer_id})
    return {customer_id: anon, **{r: f"{anon}.{n}" for n, r in enumerate(others, 1)}}
