"""Loyalty's MongoDB adapter, issue 14's staff corrections: tier overrides and adjustments awaiting approval.

A mixin of :class:`services.loyalty.store.mongo.MongoLoyaltyStore` (needs ``self.mdb``, ``self.keys`` and
the owners' ``owned_records``); a decision is a conditional update (``status: pending``), so two admins
approving at once decide once.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from services.loyalty.store import ApprovalRow, TierOverrideRow, open_note, seal_note

_OVERRIDE_KEYS = ("customer_id", "tier", "until", "starts_at", "ends_at", "reason", "by", "lifted_at", "lifted_by",
                  "lift_reason")
_APPROVAL_KEYS = ("customer_id", "points", "reason", "requested_by", "requested_at", "status", "decided_by",
                  "decided_at", "decision_reason", "adjustment_id")


class MongoCorrections:
    """Tier overrides and approvals in the service's MongoDB database."""

    mdb: Any
    keys: Any

    def create_correction_indexes(self) -> None:
        """The indexes the override and approval queries rely on."""
        self.mdb["tier_overrides"].create_index([("customer_id", 1), ("starts_at", 1)])
        self.mdb["approvals"].create_index([("status", 1), ("requested_at", 1)])
        self.mdb["approvals"].create_index("customer_id")

    def _override(self, d: dict) -> TierOverrideRow:
        return replace(
            TierOverrideRow(d["_id"], *(d.get(k) for k in _OVERRIDE_KEYS)),  # type: ignore[arg-type]
            reason=open_note(self.keys, "override.reason", d["reason"]),
            lift_reason=open_note(self.keys, "override.lift_reason", d.get("lift_reason")))

    def _approval(self, d: dict) -> ApprovalRow:
        return replace(ApprovalRow(d["_id"], *(d.get(k) for k in _APPROVAL_KEYS)),  # type: ignore[arg-type]
                       reason=open_note(self.keys, "approval.reason", d["reason"]),
                       decision_reason=open_note(self.keys, "approval.decision_reason", d.get("decision_reason")))

    def add_tier_override(self, row: TierOverrideRow) -> None:
        """Keep a new tier override."""
        doc = {k: getattr(row, k) for k in _OVERRIDE_KEYS}
        doc["reason"] = seal_note(self.keys, "override.reason", row.reason)
        self.mdb["tier_overrides"].insert_one({"_id": row.override_id, **doc})

    def tier_overrides_of(self, record_ids: list[str]) -> list[TierOverrideRow]:
        """Every tier override set on these records (lifted and ended ones too), oldest first."""
        docs = self.mdb["tier_overrides"].find({"customer_id": {"$in": list(record_ids)}})
        return sorted((self._override(d) for d in docs), key=lambda o: (o.starts_at, o.override_id))

    def lift_tier_override(self, override_id: str, *, at: str, by: str, reason: str) -> bool:
        """End an override at ``at``; False when it was lifted already or had ended by then."""
        res = self.mdb["tier_overrides"].update_one(
            {"_id": override_id, "lifted_at": None, "ends_at": {"$gt": at}},
            {"$set": {"lifted_at": at, "lifted_by": by,
                      "lift_reason": seal_note(self.keys, "override.lift_reason", reason)}})
        return res.matched_count == 1

    def add_approval(self, row: ApprovalRow) -> None:
        """Keep a new adjustment request awaiting approval."""
        doc = {k: getattr(row, k) for k in _APPROVAL_KEYS}
        doc["reason"] = seal_note(self.keys, "approval.reason", row.reason)
        self.mdb["approvals"].insert_one({"_id": row.approval_id, **doc})

    def approval(self, approval_id: str) -> ApprovalRow | None:
        """One approval."""
        d = self.mdb["approvals"].find_one({"_id": approval_id})
        return self._approval(d) if d else None

    def approvals(self, *, status: str | None, stores: frozenset[str] | None, offset: int, limit: int,
                  records: list[str] | None = None) -> list[ApprovalRow]:
        """Approvals (with ``status``, if given; of customers owned by ``stores``, if given; asked through
        these ``records``, if given), oldest first."""
        query: dict[str, Any] = {}
        if status is not None:
            query["status"] = status
        ids: list[set] = []
        if stores is not None:
            ids.append(set(self.owned_records(stores)))  # type: ignore[attr-defined]
        if records is not None:
            ids.append(set(records))
        if ids:
            query["customer_id"] = {"$in": sorted(set.intersection(*ids))}
        docs = self.mdb["approvals"].find(query).sort([("requested_at", 1), ("_id", 1)]).skip(offset).limit(limit)
        return [self._approval(d) for d in docs]

    def decide_approval(self, approval_id: str, *, status: str, by: str, at: str, reason: str,
                        adjustment_id: str | None) -> bool:
        """Approve or reject a pending approval; False (and no change) when it was decided already."""
        res = self.mdb["approvals"].update_one(
            {"_id": approval_id, "status": "pending"},
            {"$set": {"status": status, "decided_by": by, "decided_at": at, "adjustment_id": adjustment_id,
                      "decision_reason": seal_note(self.keys, "approval.decision_reason", reason)}})
        return res.matched_count == 1

    def erase_corrections(self, ids: list[str]) -> None:
        """An erased customer's overrides and approvals go (their notes may name the person)."""
        self.mdb["tier_overrides"].delete_many({"customer_id": {"$in": ids}})
        self.mdb["approvals"].delete_many({"customer_id": {"$in": ids}})
