"""Loyalty's HTTP schemas: one family per resource."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints, model_validator

from shared.clock import Moment
from shared.http.bounds import MAX_COUNT


class ExpiringRead(BaseModel):
    points: int
    expires_at: str


class AccountRead(BaseModel):
    """Balance, tier and the lots about to expire."""

    customer_id: str
    requested_id: str
    points_balance: int
    tier: str | None
    tier_benefits: dict[str, Any]
    debt: int
    expiring: list[ExpiringRead]
    updated_at: str | None
    tier_override: TierOverrideRead | None = None


class EntryRead(BaseModel):
    """One ledger entry: which rule produced it and why."""

    entry_id: str
    record_id: str
    bucket: str
    rule: str
    kind: str
    points: int
    effective_at: str
    posted_at: str
    cause: dict[str, Any]


class LedgerPage(BaseModel):
    customer_id: str
    points_balance: int
    items: list[EntryRead]
    next_cursor: str | None


class StatementRead(BaseModel):
    """closing = opening + earned − refunded − redeemed − expired + adjusted."""

    customer_id: str
    month: str
    complete: bool
    opening: int
    earned: int
    refunded: int
    redeemed: int
    expired: int
    adjusted: int
    closing: int
    expiring_days: int
    expiring: list[ExpiringRead]
    expiring_total: int


class TierChangeRead(BaseModel):
    at: str
    previous: str | None
    tier: str | None
    direction: str
    reason: str


class WindowMonthRead(BaseModel):
    month: str
    visits: int
    spend: str


class TierHistoryRead(BaseModel):
    customer_id: str
    tier: str | None
    benefits: dict[str, Any]
    failing_since: str | None
    history: list[TierChangeRead]
    window: list[WindowMonthRead]


class RulesRead(BaseModel):
    """Every rule version as the rules file spells it, with ``in_force`` on the one in force now."""

    versions: list[dict[str, Any]]


class TierLevelRead(BaseModel):
    name: str
    visits_per_month: int
    spend_per_month: str
    benefits: dict[str, Any]


class TierRulesRead(BaseModel):
    window_months: int
    review_every_months: int
    grace_months: int
    levels: list[TierLevelRead]


def _check_validity(valid_from: datetime | None, valid_until: datetime | None) -> None:
    if valid_from is not None and valid_until is not None and valid_from >= valid_until:
        raise ValueError("valid_from must be before valid_until")


class RewardCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    points_cost: int = Field(gt=0, le=100_000_000)
    stock: int = Field(ge=0, le=100_000_000)
    per_member_limit: int | None = Field(None, ge=1, le=MAX_COUNT)
    valid_from: Moment | None = None
    valid_until: Moment | None = None
    active: bool = True

    @model_validator(mode="after")
    def _validity(self) -> RewardCreate:
        _check_validity(self.valid_from, self.valid_until)
        return self


class RewardUpdate(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    points_cost: int | None = Field(None, gt=0, le=100_000_000)
    per_member_limit: int | None = Field(None, ge=1, le=MAX_COUNT)
    valid_from: Moment | None = None
    valid_until: Moment | None = None
    active: bool | None = None
    add_stock: int = Field(0, ge=-100_000_000, le=100_000_000, description="stock to add (negative takes away)")

    @model_validator(mode="after")
    def _no_nulls(self) -> RewardUpdate:
        # null clears a limit or a validity date; a reward cannot be without a name, a cost or a state.
        nulled = [k for k in ("name", "description", "points_cost", "active")
                  if k in self.model_fields_set and getattr(self, k) is None]
        if nulled:
            raise ValueError(f"{', '.join(nulled)} cannot be null")
        _check_validity(self.valid_from, self.valid_until)
        return self


class RewardRead(BaseModel):
    reward_id: str
    name: str
    description: str
    points_cost: int
    stock: int
    redeemed: int
    per_member_limit: int | None
    valid_from: str | None
    valid_until: str | None
    active: bool
    created_at: str


class RewardsPage(BaseModel):
    items: list[RewardRead]
    offset: int
    limit: int


class RedemptionCreate(BaseModel):
    reward_id: str = Field(min_length=1, max_length=64)
    quantity: int = Field(1, ge=1, le=1000)


class RedemptionCancel(BaseModel):
    reason: str = Field(min_length=3, max_length=500)


class RedemptionRead(BaseModel):
    redemption_id: str
    customer_id: str
    record_id: str
    reward_id: str
    quantity: int
    points: int
    status: str
    created_at: str
    by: str
    cancelled_at: str | None
    cancelled_by: str | None
    cancel_reason: str | None
    points_balance: int


class RedemptionsPage(BaseModel):
    items: list[RedemptionRead]
    offset: int
    limit: int


class AdjustmentCreate(BaseModel):
    points: int = Field(ge=-10_000_000, le=10_000_000, description="points to add (negative takes away)")
    # Stripped before the length check: a blank reason is no reason (a large one waits for approval on it).
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500)] = Field(
        description="why: mandatory, not blank, kept on the ledger entry")


class AdjustmentRead(BaseModel):
    adjustment_id: str
    customer_id: str
    points: int
    reason: str
    by: str
    at: str
    points_balance: int


# -- issue 12, export (H4) ------------------------------------------------------------------------


class LoyaltyExport(BaseModel):
    """Loyalty's part of a customer's export (``GET /v1/customers/{id}/export`` on identity gathers it)."""

    account: AccountRead
    ledger: list[EntryRead]
    redemptions: list[RedemptionRead]
    tiers: TierHistoryRead
    tier_overrides: list[TierOverrideRead] = Field(default_factory=list)  # issue 14
    approvals: list[ApprovalRead] = Field(default_factory=list)


# -- issue 14, staff corrections: tier overrides and adjustments awaiting approval ------------------

# Every staff correction says why: required, not blank, kept (sealed) with the change and in the audit log.
StaffReason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class TierOverrideCreate(BaseModel):
    tier: str = Field(min_length=1, max_length=32, description="one of the tiers in force")
    until: date = Field(description="the last day the override holds (business timezone), today or later")
    reason: StaffReason


class TierOverrideLift(BaseModel):
    reason: StaffReason


class DecisionRead(BaseModel):
    """Who ended an override or decided an approval, when and why."""

    at: str
    by: str
    reason: str | None


class TierOverrideRead(BaseModel):
    """A staff override: ``tier`` from ``starts_at`` through the day ``until`` (to ``ends_at``), unless lifted."""

    override_id: str
    customer_id: str
    tier: str
    until: str
    starts_at: str
    ends_at: str
    reason: str
    by: str
    active: bool
    lifted: DecisionRead | None


class TierOverridesPage(BaseModel):
    customer_id: str
    items: list[TierOverrideRead]


class AdjustmentDecision(BaseModel):
    reason: StaffReason


class ApprovalRead(BaseModel):
    """An adjustment above the approval threshold: pending until an admin other than the requester decides."""

    approval_id: str
    customer_id: str
    points: int
    reason: str
    status: str
    requested_by: str
    requested_at: str
    decision: DecisionRead | None
    adjustment_id: str | None
    points_balance: int | None


class ApprovalsPage(BaseModel):
    items: list[ApprovalRead]
    offset: int
    limit: int


# They name issue 14's schemas, defined below them.
AccountRead.model_rebuild()
LoyaltyExport.model_rebuild()
