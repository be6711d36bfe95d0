"""Staff corrections of loyalty accounts (issue 14): a tier override until a date, and manual adjustments above
the approval threshold that wait for a second person.

An override holds its tier from the moment it is set through its last day (business zone), or until staff lift
it; the tier timeline takes it as a hold (``domain.holds``), so earning, reviews and the published
``TierChanged`` all follow it. An adjustment of more than ``CRM_LOYALTY_APPROVAL_THRESHOLD`` points (either way)
becomes a pending approval: no balance moves until an admin who did not ask for it approves, and the
approval posts the adjustment once however often it is sent (a conditional status change and a ledger entry id
derived from the approval, in one transaction).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from typing import Any

from services.loyalty.handlers import Deps
from services.loyalty.handlers.accounts import settle_customer
from services.loyalty.handlers.commands import (
    Answer,
    _fingerprint,
    _new_id,
    _replay,
    _retrying,
    account_root,
    post_adjustment,
)
from services.loyalty.store import ApprovalRow, IdempotencyRow, TierOverrideRow
from shared.clock import LATEST, iso_utc
from shared.http.errors import Conflict, Forbidden, InvalidInput, NotFound

STATUSES = ("pending", "approved", "rejected")


def _invalid(code: str, message: str, field: str) -> InvalidInput:
    # The same shape as a validation error's details, so a client finds the field in one place.
    return InvalidInput(code, message, details=[{"loc": f"body.{field}", "msg": message}])


def _end_of(day: date, zone: Any) -> datetime:
    """The first moment after ``day`` in the business zone."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)


def in_force(rows: list[TierOverrideRow], *, at: str) -> TierOverrideRow | None:
    """The override in force at ``at`` (iso_utc), the latest set, if any."""
    live = [o for o in rows if o.starts_at <= at < min(o.ends_at, o.lifted_at or o.ends_at)]
    return live[-1] if live else None


def override_body(o: TierOverrideRow, *, at: str) -> dict[str, Any]:
    """An override as the API shows it (``reason`` keys, so staff notes are masked like the ledger's)."""
    return {"override_id": o.override_id, "customer_id": o.customer_id, "tier": o.tier, "until": o.until,
            "starts_at": o.starts_at, "ends_at": o.ends_at, "reason": o.reason, "by": o.by,
            "active": o.starts_at <= at < min(o.ends_at, o.lifted_at or o.ends_at),
            "lifted": {"at": o.lifted_at, "by": o.lifted_by, "reason": o.lift_reason} if o.lifted_at else None}


def current_override(root: str, *, deps: Deps) -> dict[str, Any] | None:
    """The tier override in force on this customer now, as the account shows it."""
    at = iso_utc(deps.clock())
    held = in_force(deps.store.tier_overrides_of(deps.store.records_of(root)), at=at)
    return override_body(held, at=at) if held else None


def overrides(customer_id: str, *, deps: Deps) -> dict[str, Any]:
    """Every tier override of the customer (in force, ended, lifted), newest first."""
    root = account_root(customer_id, deps=deps)
    at = iso_utc(deps.clock())
    rows = deps.store.tier_overrides_of(deps.store.records_of(root))
    return {"customer_id": root, "items": [override_body(o, at=at) for o in reversed(rows)]}


def set_override(customer_id: str, *, tier: str, until: date, reason: str, by: str, deps: Deps) -> Answer:
    """Hold the customer at ``tier`` from now through the day ``until``; one override in force at a time."""
    now = deps.clock()
    if deps.rules.book().at(now).tiers.level(tier) is None:
        raise _invalid("unknown_tier", "tier must be one of the tiers in force (GET /v1/loyalty/tiers)", "tier")
    if until < now.astimezone(deps.zone).date():
        raise _invalid("until_in_past", "until is the override's last day: today or later", "until")
    if until >= LATEST:
        raise _invalid("until_out_of_range", f"until must be before {LATEST.isoformat()}", "until")

    def work() -> Answer:
        store = deps.store
        with store.transaction():
            root = account_root(customer_id, deps=deps)
            at = iso_utc(now)
            if in_force(store.tier_overrides_of(store.records_of(root)), at=at) is not None:
                raise Conflict("override_in_force", "this customer's tier is overridden already: lift that first")
            row = TierOverrideRow("ov_" + uuid.uuid4().hex[:20], root, tier, until.isoformat(), at,
                                  iso_utc(_end_of(until, deps.zone)), reason, by)
            store.add_tier_override(row)
            out = settle_customer(root, deps=deps, trigger=[f"tier_override:{row.override_id}"], changed_from=now)
            return Answer(override_body(row, at=at), 201, outbox=store.outbox_add(out))

    return _retrying(work)


def lift_override(customer_id: str, *, reason: str, by: str, deps: Deps) -> Answer:
    """End the override in force now: the normal tier rules resume from this moment (the next review decides)."""

    def work() -> Answer:
        store, now = deps.store, deps.clock()
        with store.transaction():
            root = account_root(customer_id, deps=deps)
            at = iso_utc(now)
            held = in_force(store.tier_overrides_of(store.records_of(root)), at=at)
            if held is None or not store.lift_tier_override(held.override_id, at=at, by=by, reason=reason):
                raise Conflict("no_override_in_force", "this customer's tier is not overridden now")
            out = settle_customer(root, deps=deps, trigger=[f"tier_override_lift:{held.override_id}"],
                                  changed_from=now)
            done = replace(held, lifted_at=at, lifted_by=by, lift_reason=reason)
            return Answer(override_body(done, at=at), 200, outbox=store.outbox_add(out))

    return _retrying(work)


def needs_approval(points: int, *, deps: Deps) -> bool:
    """Whether an adjustment of ``points`` waits for a second person (more than the threshold, either way)."""
    return abs(points) > deps.config.approval_threshold


def approval_body(a: ApprovalRow, *, balance: int | None = None) -> dict[str, Any]:
    """An approval as the API shows it."""
    decided = {"by": a.decided_by, "at": a.decided_at, "reason": a.decision_reason} if a.decided_at else None
    return {"approval_id": a.approval_id, "customer_id": a.customer_id, "points": a.points, "reason": a.reason,
            "status": a.status, "requested_by": a.requested_by, "requested_at": a.requested_at,
            "decision": decided, "adjustment_id": a.adjustment_id, "points_balance": balance}


def request_adjustment(customer_id: str, *, points: int, reason: str, key: str | None, by: str,
                       deps: Deps) -> Answer:
    """An adjustment above the threshold: kept as a pending approval (202), no balance moves. Idempotent per
    ``Idempotency-Key`` as adjustments are (the key belongs to the account's adjustments)."""
    request = {"points": points, "reason": reason}

    def work() -> Answer:
        store = deps.store
        with store.transaction():
            root = account_root(customer_id, deps=deps)
            if replayed := _replay("adjust", root, key, request, deps=deps):
                return replayed
            held = store.account(root)
            if points < 0 and (held is None or held.balance < -points):
                raise Conflict("insufficient_points", "the balance does not cover this adjustment")
            scope, at = f"adjust:{root}", iso_utc(deps.clock())
            row = ApprovalRow(_new_id("apr_", scope, key), root, points, reason, by, at)
            store.add_approval(row)
            body = approval_body(row, balance=held.balance if held else 0)
            if key:
                store.put_idempotent(IdempotencyRow(scope, key, _fingerprint(scope, request), 202,
                                                    json.dumps(body, default=str), at))
            return Answer(body, 202)

    return _retrying(work)


def decide(approval_id: str, *, approve: bool, reason: str, by: str, deps: Deps) -> Answer:
    """Approve (the adjustment is posted, once) or reject a pending approval; never by its requester. Sending
    the same decision again answers it again and changes nothing; the other decision then is a 409."""
    status = "approved" if approve else "rejected"

    def work() -> Answer:
        store = deps.store
        with store.transaction():
            row = store.approval(approval_id)
            if row is None:
                raise NotFound("approval_not_found", "no such approval")
            if row.requested_by == by:
                raise Forbidden("own_request", "an adjustment needs a second person: another admin must decide it")
            root = store.customer_of(row.customer_id)
            if row.status == status:
                held = store.account(root)
                return Answer(approval_body(row, balance=held.balance if held else 0), 200, replayed=True,
                              outbox=[])
            if row.status != "pending":
                raise Conflict("already_decided", f"this adjustment was {row.status} already")
            at = iso_utc(deps.clock())
            aid = "adj_" + hashlib.sha256(f"approval\0{approval_id}".encode()).hexdigest()[:20] if approve else None
            out: list = []
            if aid is not None:
                # Posted before the status changes: a refusal (the balance no longer covers a negative
                # adjustment) leaves the approval pending even in a store without transactions; the entry id
                # comes from the approval, so it is never posted twice.
                _, out = post_adjustment(root, adjustment_id=aid, points=row.points, reason=row.reason,
                                         by=row.requested_by, deps=deps,
                                         cause={"approval_id": approval_id, "approved_by": by},
                                         record=row.customer_id)  # asked for that record: an unmerge takes it
            if not store.decide_approval(approval_id, status=status, by=by, at=at, reason=reason,
                                         adjustment_id=aid):
                raise Conflict("already_decided", "this adjustment was decided meanwhile")
            held = store.account(root)
            done = replace(row, status=status, decided_by=by, decided_at=at, decision_reason=reason,
                           adjustment_id=aid)
            return Answer(approval_body(done, balance=held.balance if held else 0), 200,
                          outbox=store.outbox_add(out))

    return _retrying(work)


def approvals(*, status: str | None, stores: frozenset[str] | None, offset: int, limit: int, deps: Deps,
              customer_id: str | None = None) -> dict[str, Any]:
    """Approvals (pending by default), oldest first, of the customers the caller sees (of one, if given)."""
    records = deps.store.records_of(account_root(customer_id, deps=deps)) if customer_id is not None else None
    rows = deps.store.approvals(status=status, stores=stores, offset=offset, limit=limit, records=records)
    return {"items": [approval_body(r) for r in rows], "offset": offset, "limit": limit}
