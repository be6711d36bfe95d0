"""Each customer's owning store, as every service keeps it from identity's ``CustomerOwnerChanged``.

Newest per customer by identity's time, so messages may arrive in any order, any number of times, and
the table ends the same. Lists are filtered by it inside their store query (:meth:`SqliteOwners.owned_sql`,
:meth:`MongoOwners.owned_records`), never after a page is fetched, so paging stays right.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shared.clock import iso_utc
from shared.contract.messages import CustomerOwnerChanged


@dataclass(frozen=True)
class OwnerRow:
    """Customer ``customer_id`` is owned by ``store_id`` (None: by no store) as of ``at`` (identity's time)."""

    customer_id: str
    store_id: str | None
    at: str


def owner_row(message: CustomerOwnerChanged) -> OwnerRow:
    """The row a ``CustomerOwnerChanged`` message says."""
    return OwnerRow(message.customer_id, message.store_id, iso_utc(message.at))


def newest_per_customer(rows: Iterable[OwnerRow]) -> dict[str, OwnerRow]:
    """Of several rows of one customer, the one identity wrote last (ties: the last given)."""
    out: dict[str, OwnerRow] = {}
    for r in rows:
        held = out.get(r.customer_id)
        if held is None or r.at >= held.at:
            out[r.customer_id] = r
    return out


OWNERS_SQL = """
CREATE TABLE IF NOT EXISTS customer_owners (
  customer_id TEXT PRIMARY KEY, store_id TEXT, at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS customer_owners_store ON customer_owners(store_id);
"""


class SqliteOwners:
    """The owners in the service's SQLite file (needs ``self.db``; schema :data:`OWNERS_SQL`)."""

    db: object

    def put_owners(self, rows: Iterable[OwnerRow]) -> None:
        """Keep each customer's newest owning store."""
        self.db.conn().executemany(  # type: ignore[attr-defined]
            "INSERT INTO customer_owners VALUES (?,?,?) ON CONFLICT(customer_id) DO UPDATE SET"
            " store_id = excluded.store_id, at = excluded.at WHERE excluded.at >= customer_owners.at",
            [(r.customer_id, r.store_id, r.at) for r in newest_per_customer(rows).values()])

    def owners_of(self, customer_ids: list[str]) -> dict[str, str | None]:
        """The owning store of each of these customers (None: no store, or never told)."""
        out: dict[str, str | None] = dict.fromkeys(customer_ids)
        ids = list(out)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            out.update(self.db.conn().execute(  # type: ignore[attr-defined]
                f"SELECT customer_id, store_id FROM customer_owners WHERE customer_id IN ({marks})", chunk))
        return out

    @staticmethod
    def owned_sql(column: str, stores: frozenset[str], *, via_memberships: bool = True) -> tuple[str, list[str]]:
        """A WHERE condition: ``column`` (a record or customer id) belongs to a customer owned by one of ``stores``."""
        marks = ",".join("?" * len(stores)) or "NULL"
        if not via_memberships:
            return (f"{column} IN (SELECT customer_id FROM customer_owners WHERE store_id IN ({marks}))",
                    sorted(stores))
        # A record belongs to the customer its membership names, or is its own customer when it has none.
        return (f"({column} IN (SELECT m.record_id FROM memberships m JOIN customer_owners o"
                f" ON o.customer_id = m.customer_id WHERE o.store_id IN ({marks}))"
                f" OR ({column} IN (SELECT customer_id FROM customer_owners WHERE store_id IN ({marks}))"
                f" AND {column} NOT IN (SELECT record_id FROM memberships)))", sorted(stores) * 2)


class MongoOwners:
    """The owners in the service's MongoDB database (needs ``self.mdb``)."""

    mdb: object

    def create_owner_indexes(self) -> None:
        """The index :meth:`owned_records` relies on (call once when the store opens)."""
        self.mdb["customer_owners"].create_index("store_id")  # type: ignore[attr-defined]

    def put_owners(self, rows: Iterable[OwnerRow]) -> None:
        """Keep each customer's newest owning store."""
        from pymongo import UpdateMany

        coll = self.mdb["customer_owners"]  # type: ignore[attr-defined]
        wanted = newest_per_customer(rows)
        if not wanted:
            return
        held = {d["_id"]: d["at"] for d in coll.find({"_id": {"$in": list(wanted)}})}
        ops = []
        for cid, r in wanted.items():
            if cid not in held:
                ops.append(UpdateMany({"_id": cid}, {"$setOnInsert": {"store_id": r.store_id, "at": r.at}},
                                      upsert=True))
            elif r.at >= held[cid]:
                ops.append(UpdateMany({"_id": cid, "at": held[cid]}, {"$set": {"store_id": r.store_id, "at": r.at}}))
        if ops:
            coll.bulk_write(ops, ordered=False)

    def owners_of(self, customer_ids: list[str]) -> dict[str, str | None]:
        """The owning store of each of these customers (None: no store, or never told)."""
        out: dict[str, str | None] = dict.fromkeys(customer_ids)
        for d in self.mdb["customer_owners"].find({"_id": {"$in": list(out)}}):  # type: ignore[attr-defined]
            out[d["_id"]] = d.get("store_id")
        return out

    def owned_records(self, stores: frozenset[str], *, via_memberships: bool = True) -> list[str]:
        """Every record (or customer) id that belongs to a customer owned by one of ``stores``, for an ``$in``."""
        customers = [d["_id"] for d in self.mdb["customer_owners"].find(  # type: ignore[attr-defined]
            {"store_id": {"$in": sorted(stores)}}, {"_id": 1})]
        if not via_memberships:
            return customers
        members = self.mdb["memberships"]  # type: ignore[attr-defined]
        records = [d["_id"] for d in members.find({"customer_id": {"$in": customers}}, {"_id": 1})]
        mapped = {d["_id"] for d in members.find({"_id": {"$in": customers}}, {"_id": 1})}
        return sorted(set(records) | {c for c in customers if c not in mapped})
