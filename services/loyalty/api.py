"""Loyalty's HTTP routes: accounts, ledger, statements, tiers, rewards, redemptions, adjustments."""

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.responses import JSONResponse

from services.loyalty import views
from services.loyalty.handlers import Deps, commands, corrections, queries
from services.loyalty.handlers.commands import Answer
from services.loyalty.schemas import (
    AccountRead,
    AdjustmentCreate,
    AdjustmentDecision,
    AdjustmentRead,
    ApprovalRead,
    ApprovalsPage,
    LedgerPage,
    LoyaltyExport,
    RedemptionCancel,
    RedemptionCreate,
    RedemptionRead,
    RedemptionsPage,
    RewardCreate,
    RewardRead,
    RewardsPage,
    RewardUpdate,
    RulesRead,
    StatementRead,
    TierHistoryRead,
    TierOverrideCreate,
    TierOverrideLift,
    TierOverrideRead,
    TierOverridesPage,
    TierRulesRead,
)
from shared.access.audit import auditor
from shared.access.http import Reason, Reveal, check_reveal
from shared.access.visibility import Seeing
from shared.clock import iso_utc
from shared.http.api import Caller, caller_dep
from shared.http.bounds import Cursor, Offset
from shared.http.errors import NotFound

# 1900-01..2100-12, the months the platform's dates span (a statement for 9999-12 or 0001-01 was a 500).
MONTH = Path(pattern=r"^(19[0-9]{2}|20[0-9]{2}|2100)-(0[1-9]|1[0-2])$", description="YYYY-MM, 1900-01 to 2100-12")
KEY_HEADER = Header(None, alias="Idempotency-Key", max_length=200,
                    description="same key and body: the same answer again; another body: 409")


def _answer(answer: Answer, deps: Deps) -> JSONResponse:
    if answer.outbox:
        deps.relay(answer.outbox)
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    return JSONResponse(answer.body, status_code=answer.status, headers=headers)


def _iso(value) -> str | None:
    return iso_utc(value) if value is not None else None


def router(deps: Deps) -> APIRouter:
    """The loyalty routes over these ``deps``."""
    r = APIRouter(prefix="/loyalty")
    # A name local to router(): this module keeps its annotations evaluated (no ``from __future__``) so
    # FastAPI sees the Annotated dependency, not a string it cannot resolve.
    DepsDep = Annotated[Deps, Depends(lambda: deps)]
    audit = auditor("loyalty", deps)  # entries go through the outbox to identity's audit log

    def _audit(answer: Answer, caller: Caller, *, action: str, target: str, reason: str | None) -> None:
        # A replayed answer (the same Idempotency-Key again) changed nothing: nothing new to record.
        if not answer.replayed and answer.status < 300:
            audit(caller, action=action, customer_id=answer.body.get("customer_id"),
                  target=answer.body.get(target), reason=reason)

    @r.get("/accounts/{customer_id}", response_model=AccountRead, tags=["accounts"])
    def get_account(d: DepsDep, customer_id: str, seeing: Seeing, caller: Caller = caller_dep("reader")) -> AccountRead:
        """Balance, tier with its benefits, and expiring lots; a merged-away id answers with its survivor."""
        queries.visible_root(customer_id, deps=d, seeing=seeing)
        data = queries.account(customer_id, deps=d)
        if data["tier_override"] is not None:  # its reason is a staff note: masked as the ledger's are
            data["tier_override"] = views.shown(data["tier_override"], admin=caller.at_least("admin"))
        return AccountRead(**data)

    def _shown(data: dict, caller: Caller, root: str, *, reveal: bool, reason: str | None, what: str) -> dict:
        # Staff notes name no one a reader may see: below admin withheld, for an admin scrubbed, whole only on
        # an admin's reveal (audited). Channel ids (event_id, source, order_id) through scrub_id.
        if check_reveal(caller, reveal):
            audit(caller, action=f"reveal.{what}", customer_id=root, reason=reason)
            return data
        return views.shown(data, admin=caller.at_least("admin"))

    @r.get("/accounts/{customer_id}/ledger", response_model=LedgerPage, tags=["accounts"])
    def get_ledger(d: DepsDep, customer_id: str, seeing: Seeing, caller: Caller = caller_dep("reader"),
                   cursor: Cursor = None, limit: int = Query(50, ge=1, le=500), reveal: bool = Reveal,
                   reason: str | None = Reason) -> LedgerPage:
        """Ledger entries, newest first: each names its rule and its cause (staff notes withheld below admin,
        whole on an admin's ``reveal=true``, audited)."""
        root = queries.visible_root(customer_id, deps=d, seeing=seeing)
        page = queries.ledger(customer_id, cursor=cursor, limit=limit, deps=d)
        return LedgerPage(**_shown(page, caller, root, reveal=reveal, reason=reason, what="ledger"))

    @r.get("/accounts/{customer_id}/statements/{month}", response_model=StatementRead, tags=["accounts"])
    def get_statement(d: DepsDep, customer_id: str, seeing: Seeing, month: str = MONTH,
                      caller: Caller = caller_dep("reader"), reveal: bool = Reveal,
                      reason: str | None = Reason) -> StatementRead:
        """A monthly statement (``YYYY-MM``): opening, earned, refunded, redeemed, expired, adjusted, closing."""
        root = queries.visible_root(customer_id, deps=d, seeing=seeing)
        statement = queries.monthly_statement(customer_id, month=month, deps=d)
        return StatementRead(**_shown(statement, caller, root, reveal=reveal, reason=reason, what="statement"))

    @r.get("/accounts/{customer_id}/tiers", response_model=TierHistoryRead, tags=["tiers"])
    def get_tier_history(d: DepsDep, customer_id: str, seeing: Seeing,
                         caller: Caller = caller_dep("reader")) -> TierHistoryRead:
        """The member's tier, benefits, every change with its reason, and the current window."""
        queries.visible_root(customer_id, deps=d, seeing=seeing)
        return TierHistoryRead(**queries.tier_history(customer_id, deps=d))

    @r.get("/tiers", response_model=TierRulesRead, tags=["tiers"])
    def get_tiers(d: DepsDep, caller: Caller = caller_dep("reader")) -> TierRulesRead:
        """Tier rules and each tier's benefits (discount, birthday gift, contact cadence)."""
        return TierRulesRead(**queries.tier_rules(deps=d))

    @r.get("/rules", response_model=RulesRead, tags=["tiers"])
    def get_rules(d: DepsDep, caller: Caller = caller_dep("reader")) -> RulesRead:
        """Every rule version (earning, expiry, tiers), the one in force marked."""
        return RulesRead(**queries.rules_in_force(deps=d))

    @r.post("/accounts/{customer_id}/redemptions", response_model=RedemptionRead, status_code=201,
            tags=["redemptions"])
    def post_redemption(d: DepsDep, customer_id: str, body: RedemptionCreate, seeing: Seeing,
                        caller: Caller = caller_dep("operator"), key: str | None = KEY_HEADER,
                        reason: str | None = Reason) -> JSONResponse:
        """Spend points on a reward; idempotent per ``Idempotency-Key``."""
        queries.visible_root(customer_id, deps=d, seeing=seeing)
        answer = commands.redeem(customer_id, reward_id=body.reward_id, quantity=body.quantity, key=key,
                                 by=caller.name, deps=d)
        _audit(answer, caller, action="loyalty.redemption", target="redemption_id", reason=reason)
        return _answer(answer, d)

    @r.get("/accounts/{customer_id}/redemptions", response_model=RedemptionsPage, tags=["redemptions"])
    def get_redemptions(d: DepsDep, customer_id: str, seeing: Seeing, caller: Caller = caller_dep("reader"),
                        offset: Offset = 0, limit: int = Query(50, ge=1, le=500), reveal: bool = Reveal,
                        reason: str | None = Reason) -> RedemptionsPage:
        """The member's redemptions, newest first."""
        root = queries.visible_root(customer_id, deps=d, seeing=seeing)
        page = queries.redemptions(customer_id, offset=offset, limit=limit, deps=d)
        return RedemptionsPage(**_shown(page, caller, root, reveal=reveal, reason=reason, what="redemptions"))

    @r.post("/redemptions/{redemption_id}/cancel", response_model=RedemptionRead, tags=["redemptions"])
    def post_cancel(d: DepsDep, redemption_id: str, body: RedemptionCancel, seeing: Seeing,
                    caller: Caller = caller_dep("operator"), reason: str | None = Reason) -> JSONResponse:
        """Cancel a redemption: points back to the member, stock back to the reward."""
        queries.check_redemption(redemption_id, deps=d, seeing=seeing)
        answer = commands.cancel(redemption_id, reason=body.reason, by=caller.name, deps=d)
        _audit(answer, caller, action="loyalty.redemption_cancel", target="redemption_id",
               reason=reason or body.reason)
        return _answer(answer, d)

    @r.post("/accounts/{customer_id}/adjustments", response_model=AdjustmentRead, status_code=201,
            tags=["accounts"], responses={202: {"model": ApprovalRead,
                                                "description": "above the approval threshold: pending approval"}})
    def post_adjustment(d: DepsDep, customer_id: str, body: AdjustmentCreate, seeing: Seeing,
                        caller: Caller = caller_dep("operator"), key: str | None = KEY_HEADER,
                        reason: str | None = Reason) -> JSONResponse:
        """A manual adjustment with its mandatory reason (operator); never below a zero balance. Above
        ``CRM_LOYALTY_APPROVAL_THRESHOLD`` points either way: 202, a pending approval, no balance change."""
        queries.visible_root(customer_id, deps=d, seeing=seeing)
        if corrections.needs_approval(body.points, deps=d):
            answer = corrections.request_adjustment(customer_id, points=body.points, reason=body.reason, key=key,
                                                    by=caller.name, deps=d)
            _audit(answer, caller, action="loyalty.adjustment_request", target="approval_id",
                   reason=reason or body.reason)
            return _answer(answer, d)
        answer = commands.adjust(customer_id, points=body.points, reason=body.reason, key=key,
                                 by=caller.name, deps=d)
        _audit(answer, caller, action="loyalty.adjustment", target="adjustment_id", reason=reason or body.reason)
        return _answer(answer, d)

    # -- issue 14, staff corrections: tier overrides and adjustments awaiting approval -----------
    @r.post("/accounts/{customer_id}/tier-override", response_model=TierOverrideRead, status_code=201,
            tags=["tiers"])
    def post_tier_override(d: DepsDep, customer_id: str, body: TierOverrideCreate, seeing: Seeing,
                           caller: Caller = caller_dep("operator")) -> JSONResponse:
        """Hold the customer at a tier from now through the day ``until`` (operator, with a reason; audited)."""
        queries.visible_root(customer_id, deps=d, seeing=seeing)
        answer = corrections.set_override(customer_id, tier=body.tier, until=body.until, reason=body.reason,
                                          by=caller.name, deps=d)
        _audit(answer, caller, action="loyalty.tier_override", target="override_id", reason=body.reason)
        return _answer(answer, d)

    @r.get("/accounts/{customer_id}/tier-overrides", response_model=TierOverridesPage, tags=["tiers"])
    def get_tier_overrides(d: DepsDep, customer_id: str, seeing: Seeing,
                           caller: Caller = caller_dep("reader")) -> TierOverridesPage:
        """Every tier override of the customer (in force, ended, lifted), newest first; reasons masked."""
        queries.visible_root(customer_id, deps=d, seeing=seeing)
        page = corrections.overrides(customer_id, deps=d)
        return TierOverridesPage(**views.shown(page, admin=caller.at_least("admin")))

    @r.post("/accounts/{customer_id}/tier-override/lift", response_model=TierOverrideRead, tags=["tiers"])
    def post_tier_override_lift(d: DepsDep, customer_id: str, body: TierOverrideLift, seeing: Seeing,
                                caller: Caller = caller_dep("operator")) -> JSONResponse:
        """End the override in force early: the normal tier rules resume now (operator, reason; audited)."""
        queries.visible_root(customer_id, deps=d, seeing=seeing)
        answer = corrections.lift_override(customer_id, reason=body.reason, by=caller.name, deps=d)
        _audit(answer, caller, action="loyalty.tier_override_lift", target="override_id", reason=body.reason)
        return _answer(answer, d)

    @r.get("/approvals", response_model=ApprovalsPage, tags=["accounts"])
    def get_approvals(d: DepsDep, seeing: Seeing, caller: Caller = caller_dep("reader"),
                      status: str = Query("pending", pattern="^(pending|approved|rejected|all)$"),
                      offset: Offset = 0, limit: int = Query(50, ge=1, le=500)) -> ApprovalsPage:
        """Adjustments awaiting approval (or decided ones), oldest first, of the customers the caller sees."""
        page = corrections.approvals(status=None if status == "all" else status, stores=seeing.stores,
                                     offset=offset, limit=limit, deps=d)
        return ApprovalsPage(**views.shown(page, admin=caller.at_least("admin")))

    @r.get("/approvals/{approval_id}", response_model=ApprovalRead, tags=["accounts"])
    def get_approval(d: DepsDep, approval_id: str, seeing: Seeing,
                     caller: Caller = caller_dep("reader")) -> ApprovalRead:
        """One approval."""
        queries.check_approval(approval_id, deps=d, seeing=seeing)
        row = d.store.approval(approval_id)
        return ApprovalRead(**views.shown(corrections.approval_body(row), admin=caller.at_least("admin")))  # type: ignore[arg-type]

    def _decide(d: Deps, approval_id: str, body: AdjustmentDecision, seeing, caller: Caller, *,
                approve: bool) -> JSONResponse:
        queries.check_approval(approval_id, deps=d, seeing=seeing)
        answer = corrections.decide(approval_id, approve=approve, reason=body.reason, by=caller.name, deps=d)
        _audit(answer, caller, action="loyalty.adjustment_" + ("approve" if approve else "reject"),
               target="approval_id", reason=body.reason)
        return _answer(replace(answer, body=views.shown(answer.body, admin=True)), d)

    @r.post("/approvals/{approval_id}/approve", response_model=ApprovalRead, tags=["accounts"])
    def post_approve(d: DepsDep, approval_id: str, body: AdjustmentDecision, seeing: Seeing,
                     caller: Caller = caller_dep("admin")) -> JSONResponse:
        """Approve an adjustment another person asked for (admin): posted once, however often this is sent."""
        return _decide(d, approval_id, body, seeing, caller, approve=True)

    @r.post("/approvals/{approval_id}/reject", response_model=ApprovalRead, tags=["accounts"])
    def post_reject(d: DepsDep, approval_id: str, body: AdjustmentDecision, seeing: Seeing,
                    caller: Caller = caller_dep("admin")) -> JSONResponse:
        """Reject an adjustment another person asked for (admin, with a reason): no balance changes."""
        return _decide(d, approval_id, body, seeing, caller, approve=False)

    @r.get("/rewards", response_model=RewardsPage, tags=["rewards"])
    def get_rewards(d: DepsDep, caller: Caller = caller_dep("reader"), active_only: bool = False,
                    offset: Offset = 0, limit: int = Query(50, ge=1, le=500)) -> RewardsPage:
        """The rewards catalogue with stock."""
        rows = d.store.rewards(active_only=active_only, offset=offset, limit=limit)
        return views.rewards_page(rows, offset=offset, limit=limit)

    @r.post("/rewards", response_model=RewardRead, status_code=201, tags=["rewards"])
    def post_reward(d: DepsDep, body: RewardCreate, seeing: Seeing,
                    caller: Caller = caller_dep("admin")) -> RewardRead:
        """Add a reward to the catalogue (admin, company-wide)."""
        # The catalogue is company master data every store redeems from: a store's admin may not change it.
        seeing.company_only("changing the rewards catalogue")
        fields = body.model_dump()
        fields.update(valid_from=_iso(body.valid_from), valid_until=_iso(body.valid_until))
        return views.reward_read(commands.create_reward(fields, deps=d))

    @r.get("/rewards/{reward_id}", response_model=RewardRead, tags=["rewards"])
    def get_reward(d: DepsDep, reward_id: str, caller: Caller = caller_dep("reader")) -> RewardRead:
        """One reward."""
        row = d.store.reward(reward_id)
        if row is None:
            raise NotFound("reward_not_found", "no such reward")
        return views.reward_read(row)

    @r.patch("/rewards/{reward_id}", response_model=RewardRead, tags=["rewards"])
    def patch_reward(d: DepsDep, reward_id: str, body: RewardUpdate, seeing: Seeing,
                     caller: Caller = caller_dep("admin")) -> RewardRead:
        """Change a reward or add stock (admin, company-wide)."""
        seeing.company_only("changing the rewards catalogue")
        changes = body.model_dump(exclude_unset=True, exclude={"add_stock"})
        for k in ("valid_from", "valid_until"):
            if k in changes:
                changes[k] = _iso(changes[k])
        row = commands.update_reward(reward_id, changes=changes, add_stock=body.add_stock, deps=d)
        return views.reward_read(row)

    # -- issue 12, export (H4): outside /loyalty, the same path on every service --------------
    outer = APIRouter()
    outer.include_router(r)

    @outer.get("/customers/{customer_id}/export", response_model=LoyaltyExport, tags=["privacy"])
    def get_export(d: DepsDep, customer_id: str, seeing: Seeing, caller: Caller = caller_dep("admin"),
                   reason: str | None = Reason) -> LoyaltyExport:
        """Loyalty's part of the customer's export (identity's export route gathers it); audited."""
        root = queries.visible_root(customer_id, deps=d, seeing=seeing)
        done = LoyaltyExport(**queries.export(customer_id, deps=d))
        audit(caller, action="privacy.export", customer_id=root, reason=reason)
        return done

    return outer
