"""Loyalty's HTTP routes: accounts, ledger, statements, tiers, rewards, redemptions, adjustments."""

from __future__ import annotations

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse

from services.loyalty import commands, views
from services.loyalty.commands import Answer
from services.loyalty.schemas import (
    AccountRead,
    AdjustmentCreate,
    AdjustmentRead,
    LedgerPage,
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
    TierRulesRead,
)
from shared.clock import iso_utc
from shared.http.api import Caller, caller_dep
from shared.http.bounds import Cursor, Offset
from shared.http.errors import NotFound

# 1900-01..2100-12, the months the platform's dates span (a statement for 9999-12 or 0001-01 was a 500).
MONTH = Path(pattern=r"^(19[0-9]{2}|20[0-9]{2}|2100)-(0[1-9]|1[0-2])$", description="YYYY-MM, 1900-01 to 2100-12")
KEY_HEADER = Header(None, alias="Idempotency-Key", max_length=200,
                    description="same key and body: the same answer again; another body: 409")


def _answer(request: Request, answer: Answer) -> JSONResponse:
    if answer.outbox:
        request.app.state.service.relay(answer.outbox)
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    return JSONResponse(answer.body, status_code=answer.status, headers=headers)


def _deps(request: Request):
    return request.app.state.service.deps


def _iso(value) -> str | None:
    return iso_utc(value) if value is not None else None


def router() -> APIRouter:
    """The loyalty routes; handlers and store come from ``request.app.state.service``."""
    r = APIRouter(prefix="/loyalty")

    @r.get("/accounts/{customer_id}", response_model=AccountRead, tags=["accounts"])
    def get_account(request: Request, customer_id: str, caller: Caller = caller_dep("reader")) -> AccountRead:
        """Balance, tier with its benefits, and expiring lots; a merged-away id answers with its survivor."""
        return AccountRead(**views.account(customer_id, _deps(request)))

    @r.get("/accounts/{customer_id}/ledger", response_model=LedgerPage, tags=["accounts"])
    def get_ledger(request: Request, customer_id: str, caller: Caller = caller_dep("reader"),
                   cursor: Cursor = None, limit: int = Query(50, ge=1, le=500)) -> LedgerPage:
        """Ledger entries, newest first: each names its rule and its cause."""
        return LedgerPage(**views.ledger(customer_id, cursor=cursor, limit=limit, deps=_deps(request)))

    @r.get("/accounts/{customer_id}/statements/{month}", response_model=StatementRead, tags=["accounts"])
    def get_statement(request: Request, customer_id: str, month: str = MONTH,
                      caller: Caller = caller_dep("reader")) -> StatementRead:
        """A monthly statement (``YYYY-MM``): opening, earned, refunded, redeemed, expired, adjusted, closing."""
        return StatementRead(**views.monthly_statement(customer_id, month, deps=_deps(request)))

    @r.get("/accounts/{customer_id}/tiers", response_model=TierHistoryRead, tags=["tiers"])
    def get_tier_history(request: Request, customer_id: str, caller: Caller = caller_dep("reader")) -> TierHistoryRead:
        """The member's tier, benefits, every change with its reason, and the current window."""
        return TierHistoryRead(**views.tier_history(customer_id, deps=_deps(request)))

    @r.get("/tiers", response_model=TierRulesRead, tags=["tiers"])
    def get_tiers(request: Request, caller: Caller = caller_dep("reader")) -> TierRulesRead:
        """Tier rules and each tier's benefits (discount, birthday gift, contact cadence)."""
        return TierRulesRead(**views.tier_rules(_deps(request)))

    @r.get("/rules", response_model=RulesRead, tags=["tiers"])
    def get_rules(request: Request, caller: Caller = caller_dep("reader")) -> RulesRead:
        """Every rule version (earning, expiry, tiers), the one in force marked."""
        return RulesRead(**views.rules_in_force(_deps(request)))

    @r.post("/accounts/{customer_id}/redemptions", response_model=RedemptionRead, status_code=201,
            tags=["redemptions"])
    def post_redemption(request: Request, customer_id: str, body: RedemptionCreate,
                        caller: Caller = caller_dep("operator"), key: str | None = KEY_HEADER) -> JSONResponse:
        """Spend points on a reward; idempotent per ``Idempotency-Key``."""
        return _answer(request, commands.redeem(customer_id, reward_id=body.reward_id, quantity=body.quantity,
                                                key=key, by=caller.key_id, deps=_deps(request)))

    @r.get("/accounts/{customer_id}/redemptions", response_model=RedemptionsPage, tags=["redemptions"])
    def get_redemptions(request: Request, customer_id: str, caller: Caller = caller_dep("reader"),
                        offset: Offset = 0, limit: int = Query(50, ge=1, le=500)) -> RedemptionsPage:
        """The member's redemptions, newest first."""
        return RedemptionsPage(**views.redemptions(customer_id, offset=offset, limit=limit, deps=_deps(request)))

    @r.post("/redemptions/{redemption_id}/cancel", response_model=RedemptionRead, tags=["redemptions"])
    def post_cancel(request: Request, redemption_id: str, body: RedemptionCancel,
                    caller: Caller = caller_dep("operator")) -> JSONResponse:
        """Cancel a redemption: points back to the member, stock back to the reward."""
        return _answer(request, commands.cancel(redemption_id, reason=body.reason, by=caller.key_id,
                                                deps=_deps(request)))

    @r.post("/accounts/{customer_id}/adjustments", response_model=AdjustmentRead, status_code=201,
            tags=["accounts"])
    def post_adjustment(request: Request, customer_id: str, body: AdjustmentCreate,
                        caller: Caller = caller_dep("operator"), key: str | None = KEY_HEADER) -> JSONResponse:
        """A manual adjustment with its mandatory reason (operator); never below a zero balance."""
        return _answer(request, commands.adjust(customer_id, points=body.points, reason=body.reason, key=key,
                                                by=caller.key_id, deps=_deps(request)))

    @r.get("/rewards", response_model=RewardsPage, tags=["rewards"])
    def get_rewards(request: Request, caller: Caller = caller_dep("reader"), active_only: bool = False,
                    offset: Offset = 0, limit: int = Query(50, ge=1, le=500)) -> RewardsPage:
        """The rewards catalogue with stock."""
        rows = _deps(request).store.rewards(active_only=active_only, offset=offset, limit=limit)
        return RewardsPage(items=[RewardRead(**vars(x)) for x in rows], offset=offset, limit=limit)

    @r.post("/rewards", response_model=RewardRead, status_code=201, tags=["rewards"])
    def post_reward(request: Request, body: RewardCreate, caller: Caller = caller_dep("admin")) -> RewardRead:
        """Add a reward to the catalogue (admin)."""
        fields = body.model_dump()
        fields.update(valid_from=_iso(body.valid_from), valid_until=_iso(body.valid_until))
        return RewardRead(**vars(commands.create_reward(fields, deps=_deps(request))))

    @r.get("/rewards/{reward_id}", response_model=RewardRead, tags=["rewards"])
    def get_reward(request: Request, reward_id: str, caller: Caller = caller_dep("reader")) -> RewardRead:
        """One reward."""
        row = _deps(request).store.reward(reward_id)
        if row is None:
            raise NotFound("reward_not_found", "no such reward")
        return RewardRead(**vars(row))

    @r.patch("/rewards/{reward_id}", response_model=RewardRead, tags=["rewards"])
    def patch_reward(request: Request, reward_id: str, body: RewardUpdate,
                     caller: Caller = caller_dep("admin")) -> RewardRead:
        """Change a reward or add stock (admin)."""
        changes = body.model_dump(exclude_unset=True, exclude={"add_stock"})
        for k in ("valid_from", "valid_until"):
            if k in changes:
                changes[k] = _iso(changes[k])
        row = commands.update_reward(reward_id, changes, add_stock=body.add_stock, deps=_deps(request))
        return RewardRead(**vars(row))

    return r
