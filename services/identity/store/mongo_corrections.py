"""Identity's MongoDB adapter, issue 14's staff-correction operations: identifiers a phone change replaced
(kept for the history, never found again) and the store or account manager staff assigned a customer to
(a private mixin of the adapter)."""

from __future__ import annotations

from pymongo import ASCENDING

from services.identity.domain.cleaning import Ident
from services.identity.store import AssignmentRow, ReplacedIdentifierRow

_NO_ID = {"_id": False}


class MongoCorrections:
    """Mixed into the mongo adapter; uses the adapter's database and keyring."""

    def create_correction_indexes(self) -> None:
        """The indexes the correction operations rely on (idempotent; run at open)."""
        m = self.mdb
        m["replaced_identifiers"].create_index([("type", ASCENDING), ("value", ASCENDING)])
        m["replaced_identifiers"].create_index("record_id")
        m["assignments"].create_index([("customer_id", ASCENDING), ("kind", ASCENDING)], unique=True)

    def replace_identifier(self, ident: Ident, *, change_id: str, by: str, at: str) -> bool:
        """Move a held identifier into the history (it links nothing from now on); False when nobody holds it."""
        kind, value = ident
        held = self.mdb["identifiers"].find_one({"type": kind, "value": self.keys.index(kind, value)})
        if held is None:
            return False
        kept = {k: held.get(k) for k in ("type", "value", "record_id", "first_seen", "source", "event_id", "sealed")}
        self.mdb["replaced_identifiers"].update_one(
            {"_id": f"{change_id}|{kind}|{held['value']}"},
            {"$setOnInsert": {**kept, "change_id": change_id, "replaced_at": at, "replaced_by": by}}, upsert=True)
        self.mdb["identifiers"].delete_one({"_id": held["_id"]})
        return True

    def set_phone(self, record_id: str, *, phone: str, at: str) -> None:
        """The phone a record (an active customer) is known by now."""
        records = self.mdb["records"]
        records.update_one({"_id": record_id}, {"$set": {"phone": self.keys.seal(record_id, "records.phone", phone)}})
        records.update_one({"_id": record_id, "updated_at": {"$lt": at}}, {"$set": {"updated_at": at}})

    def replaced_identifiers(self, record_ids: list[str]) -> list[ReplacedIdentifierRow]:
        """The identifiers phone changes took off these records, oldest replacement first."""
        out = [ReplacedIdentifierRow(d["type"], self.keys.open(d["record_id"], f"identifiers.{d['type']}", d["sealed"]),
                                     d["record_id"], d["first_seen"], d["source"], d["event_id"], d["replaced_at"],
                                     d["replaced_by"], d["change_id"])
               for d in self.mdb["replaced_identifiers"].find({"record_id": {"$in": list(record_ids)}})]
        return sorted((r for r in out if r.value is not None), key=lambda r: (r.replaced_at, r.change_id))

    def has_replaced_identifiers(self) -> bool:
        """Whether a phone change ever replaced an identifier (most batches need no extra read then)."""
        return self.mdb["replaced_identifiers"].find_one({}, {"_id": 1}) is not None

    def replacements(self, idents: list[Ident]) -> dict[Ident, list[tuple[str, str]]]:
        """When each of these identifiers was replaced and on which record, oldest first (only those replaced)."""
        by_index = {(t, self.keys.index(t, v)): (t, v) for t, v in dict.fromkeys(idents)}
        if not by_index:
            return {}
        out: dict[Ident, list[tuple[str, str]]] = {}
        found = self.mdb["replaced_identifiers"].find(
            {"$or": [{"type": t, "value": ix} for t, ix in by_index]},
            {"type": 1, "value": 1, "replaced_at": 1, "record_id": 1, "change_id": 1})
        for d in sorted(found, key=lambda d: (d["replaced_at"], d["change_id"])):
            out.setdefault(by_index[(d["type"], d["value"])], []).append((d["replaced_at"], d["record_id"]))
        return out

    def put_assignment(self, row: AssignmentRow) -> None:
        """Assign a customer to a store or an account manager (replacing the one of that kind held)."""
        self.mdb["assignments"].update_one({"customer_id": row.customer_id, "kind": row.kind},
                                           {"$set": {"value": row.value, "by": row.by, "at": row.at}}, upsert=True)

    def remove_assignment(self, customer_id: str, *, kind: str) -> bool:
        """End a customer's assignment of this kind; False when there was none."""
        return self.mdb["assignments"].delete_one({"customer_id": customer_id, "kind": kind}).deleted_count == 1

    def assignments_of(self, customer_ids: list[str]) -> dict[str, dict[str, AssignmentRow]]:
        """Per customer that has any, its assignments by kind."""
        out: dict[str, dict[str, AssignmentRow]] = {}
        for d in self.mdb["assignments"].find({"customer_id": {"$in": list(dict.fromkeys(customer_ids))}}, _NO_ID):
            out.setdefault(d["customer_id"], {})[d["kind"]] = AssignmentRow(d["customer_id"], d["kind"], d["value"],
                                                                            d["by"], d["at"])
        return out

    def assigned_to(self, kind: str, value: str, *, stores: frozenset[str] | None, offset: int,
                    limit: int) -> list[AssignmentRow]:
        """The active customers assigned to ``value`` (e.g. one account manager), newest assignment first; with
        ``stores``, only customers one of them owns (filtered before paging, so pages stay whole)."""
        query: dict = {"kind": kind, "value": value}
        if stores is not None:
            query["customer_id"] = {"$in": self.owned_records(stores, via_memberships=False)}
        rows = sorted(self.mdb["assignments"].find(query, _NO_ID), key=lambda d: d["customer_id"])
        rows.sort(key=lambda d: d["at"], reverse=True)
        # A merged-away customer's assignment waits for an unmerge: only active customers are listed.
        active = {d["_id"] for d in self.mdb["records"].find(
            {"_id": {"$in": [d["customer_id"] for d in rows]}, "merged_into": None}, {"_id": 1})}
        kept = [d for d in rows if d["customer_id"] in active][offset:offset + limit]
        return [AssignmentRow(d["customer_id"], d["kind"], d["value"], d["by"], d["at"]) for d in kept]
