"""Delivery receipts in campaigns' MongoDB database (issue 14): the same operations as ``sqlite_receipts``.

A receipt's document id is its event's ``(source, id)``, so a redelivered receipt, or one a concurrent
worker keeps first, is inserted once; its failure reason is sealed under the service's own key (the reply
text is never kept here).
"""

from __future__ import annotations

from collections.abc import Collection

from services.campaigns.domain.delivery import Receipt
from services.campaigns.store import TouchRow
from services.campaigns.store.mongo_facts import chunked, key
from shared.contract.facts import FieldValue, newest
from shared.storage.crypto import SERVICE
from shared.storage.fact_tables import mongo_insert_new, open_doc_field

REASON = "receipts.reason"  # the field a reason is sealed as

_FIELDS = ("source", "id", "touch_id", "campaign_id", "status", "reason", "time_ms", "mismatched")


def _touch(d: dict) -> TouchRow:
    return TouchRow(d["_id"], d["campaign_id"], d["customer_id"], d["channel"], d["at_ms"], d.get("step", "initial"))


class MongoReceipts:
    """Receipts and the touch reads they need (needs ``self.mdb``)."""

    mdb: object

    def create_receipt_indexes(self) -> None:
        """The indexes receipts are read by (a campaign's, a few touches')."""
        self.mdb["receipts"].create_index("campaign_id")  # type: ignore[index]
        self.mdb["receipts"].create_index("touch_id")  # type: ignore[index]

    def add_receipts(self, rows: list[Receipt]) -> list[Receipt]:
        """Keep receipts not held before (by source and id); returns those kept now, in order."""
        docs = [{"_id": key(r.source, r.id), **{f: getattr(r, f) for f in _FIELDS},
                 "reason": self.keys.seal(SERVICE, REASON, r.reason)} for r in rows]  # type: ignore[attr-defined]
        fresh = mongo_insert_new(self.mdb["receipts"], docs) if docs else set()  # type: ignore[index]
        out, seen = [], set()
        for r in rows:  # the same receipt twice in one batch is kept once
            k = key(r.source, r.id)
            if k in fresh and k not in seen:
                seen.add(k)
                out.append(r)
        return out

    def touches_by_id(self, touch_ids: Collection[str]) -> dict[str, TouchRow]:
        """The touches held of these ids."""
        out: dict[str, TouchRow] = {}
        for chunk in chunked(touch_ids):
            out.update({d["_id"]: _touch(d) for d in self.mdb["touches"].find({"_id": {"$in": chunk}})})  # type: ignore[index]
        return out

    def campaign_touches(self, campaign_id: str) -> list[TouchRow]:
        """Every touch a campaign sent (first touches and follow-ups), by touch id."""
        return [_touch(d) for d in self.mdb["touches"].find({"campaign_id": campaign_id}).sort("_id", 1)]  # type: ignore[index]

    def receipts(self, campaign_id: str) -> list[Receipt]:
        """Every receipt kept for a campaign's touches."""
        docs = self.mdb["receipts"].find({"campaign_id": campaign_id}).sort([("source", 1), ("id", 1)])  # type: ignore[index]
        return [self._receipt(d) for d in docs]

    def touches_of(self, member_ids: Collection[str]) -> list[TouchRow]:
        """Every touch sent to these members (as launched), oldest first (a customer's export)."""
        out = []
        for chunk in chunked(member_ids):
            out += [_touch(d) for d in self.mdb["touches"].find({"customer_id": {"$in": chunk}})]  # type: ignore[index]
        return sorted(out, key=lambda t: (t.at_ms, t.touch_id))

    def receipts_of(self, touch_ids: Collection[str]) -> list[Receipt]:
        """Every receipt kept for these touches."""
        out = []
        for chunk in chunked(touch_ids):
            out += [self._receipt(d) for d in self.mdb["receipts"].find({"touch_id": {"$in": chunk}})]  # type: ignore[index]
        return sorted(out, key=lambda r: (r.source, r.id))

    def _receipt(self, d: dict) -> Receipt:
        values = {f: d.get(f) for f in _FIELDS} | {"mismatched": bool(d.get("mismatched"))}  # older: absent
        return Receipt(**values | {"reason": self.keys.open(SERVICE, REASON, d.get("reason"))})  # type: ignore[attr-defined]

    def field_values(self, customers: Collection[str], *, fields: Collection[str]) -> dict[str, dict[str, FieldValue]]:
        """The newest value of each of these profile fields of a few customers (over all their records;
        a customer with no record yet is read as its own record)."""
        owner = {c: c for c in customers} | self._records(customers)  # type: ignore[attr-defined]
        values: dict[str, list[FieldValue]] = {}
        for chunk in chunked(owner):
            docs = list(self.mdb["attributes"].find({"record_id": {"$in": chunk}, "field": {"$in": sorted(fields)}}))  # type: ignore[index]
            self.keys.load({d["record_id"] for d in docs})  # type: ignore[attr-defined]
            for d in docs:
                value = open_doc_field(self.keys, d["record_id"], d["field"], d["value"])  # type: ignore[attr-defined]
                values.setdefault(owner[d["record_id"]], []).append(
                    FieldValue(d["field"], value, d["time_ms"], d["source"], d["event_id"]))
        return {c: newest(vs) for c, vs in values.items()}
