"""Campaigns' HTTP schemas: one family per resource (campaigns, audience, results, event effect)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.campaigns.domain.definition import AudienceFilter, Channel, Costs, Definition, FollowUp, Objective
from shared.clock import Day, Moment
from shared.contract.view_parts import CampaignItem
from shared.http.bounds import MAX_ID

CustomerId = Annotated[str, Field(min_length=1, max_length=MAX_ID)]


class CampaignCreate(Definition):
    """A new campaign (created as a draft)."""


class CampaignUpdate(BaseModel):
    """Fields of a draft to change; the campaign is validated as a whole after the change."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    objective: Objective | None = None
    channel: Channel | None = None
    audience: AudienceFilter | None = None
    offer: dict[str, Any] | None = None
    bonus_multiplier: Decimal | None = Field(None, gt=1, le=10)
    starts_at: Moment | None = None
    ends_at: Moment | None = None
    attribution_window_days: int | None = Field(None, ge=1, le=365)
    control_share: Decimal | None = Field(None, ge=Decimal("0.01"), le=Decimal("0.90"))
    costs: Costs | None = None
    follow_up: FollowUp | None = None


class LaunchRead(BaseModel):
    """What a launch did (or, from ``/preview``, would do)."""

    as_of: str
    matched: int = Field(description="customers the audience filter matched")
    excluded: dict[str, int] = Field(description="matched customers left out, by reason: no_consent, opted_out, "
                                                 "contact_cap")
    members: int
    treatment: int
    control: int
    touches: int
    bonus_grants: int


class CampaignRead(Definition):
    """A campaign: its definition, status and launch."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    # Null to a store-scoped reader, with ``launch``: they belong to the whole campaign (like the results' cost).
    costs: Costs | None = Field(default_factory=Costs)  # type: ignore[assignment]
    campaign_id: str
    status: Literal["draft", "scheduled", "running", "paused", "completed", "cancelled"]
    created_at: str
    updated_at: str
    launched_at: str | None = None
    launch: LaunchRead | None = Field(None, description="what the launch did; null before it, and to a "
                                                        "store-scoped reader (company-wide figures)")
    paused_from: str | None = None
    last_error: str | None = Field(None, description="why the last scheduled launch failed, if it did")


class CampaignsPage(BaseModel):
    items: list[CampaignRead]
    total: int
    offset: int
    limit: int


class MemberRead(BaseModel):
    """An audience member as launched, and the customer they are part of now."""

    member_id: str
    customer_id: str
    group: Literal["treatment", "control"]
    assigned_at: str
    tier: str | None
    age_band: str
    home_store: str | None
    returning: bool


class AudiencePage(BaseModel):
    campaign_id: str
    items: list[MemberRead]
    total: int
    next_cursor: str | None


class DeliveryRead(BaseModel):
    """What the channel systems' receipts (``crm.delivery``) say became of a group's touches (issue 14).

    Each status implies the ones before it: ``replied`` counts as opened and delivered, ``opened`` as
    delivered; ``failed`` counts touches no receipt reported delivered. Rates are over ``touches``, null
    until a receipt for one of the group's touches has come (nothing measured yet)."""

    touches: int
    delivered: int
    failed: int
    opened: int
    replied: int
    pending: int = Field(description="touches no receipt has spoken of yet")
    delivery_rate: float | None
    failure_rate: float | None
    open_rate: float | None
    reply_rate: float | None
    failure_reasons: dict[str, int] = Field(description="failed touches by the reason of their newest failure: "
                                                        "a code (E102, SMS:UNDELIV) or a common carrier reason "
                                                        "(空号) as given, any other text counted as other")
    follow_ups: int = Field(description="members sent the follow-up touch after their reply")
    mismatched_replies: int = Field(description="replies to the group's touches that identity resolved to another "
                                                "customer than the touch's member: counted in the touch's status, "
                                                "no follow-up")


class GroupRead(BaseModel):
    size: int
    converters: int
    conversion_rate: float | None
    orders: int
    revenue: Decimal
    average_order_value: Decimal | None
    revenue_per_member: Decimal | None
    delivery: DeliveryRead | None = Field(None, description="null: the group got no touches (control)")


class LiftRead(BaseModel):
    """Treatment minus control. ``ci_*``: Wald 95% interval of the difference of proportions;
    ``p_value``: two-sided two-proportion z-test (pooled); ``relative_ci_*``: Katz log risk-ratio interval."""

    confidence: float = 0.95
    absolute: float
    ci_low: float
    ci_high: float
    z: float
    p_value: float
    relative: float | None
    relative_ci_low: float | None
    relative_ci_high: float | None


class SegmentRead(BaseModel):
    segment: str | None
    treatment: GroupRead
    control: GroupRead
    lift: LiftRead | None
    incremental_conversions: float | None
    incremental_revenue: Decimal | None
    cost: Decimal | None = Field(None, description="the segment's treatment members' share of the campaign's cost")
    roi: Decimal | None = Field(None, description="(incremental revenue - cost) / cost, for this segment")


class DayRead(BaseModel):
    day: str
    group: Literal["treatment", "control"]
    new_converters: int
    returning_converters: int
    orders: int
    revenue: Decimal
    new_orders: int = Field(description="credited orders of members with no purchase before the launch")
    returning_orders: int = Field(description="credited orders of members who had bought before the launch")


class PeriodSalesRead(BaseModel):
    """Every customer's sales in the campaign's period (the launch to the end of its attribution window)."""

    starts_at: str
    ends_at: str
    orders: int
    sales: Decimal = Field(description="purchases net of their refunds, every customer")
    refunded: Decimal
    campaign_revenue: Decimal = Field(description="revenue credited to the treatment group")
    share_of_sales: Decimal | None = Field(description="campaign revenue / sales")
    incremental_share_of_sales: Decimal | None = Field(description="incremental revenue / sales")


class CostRead(BaseModel):
    fixed: Decimal | None = Field(description="null in results restricted to some stores' members")
    per_touch: Decimal | None = Field(description="null in results restricted to some stores' members")
    touches: int | None = Field(description="null in results restricted to some stores' members")
    total: Decimal | None = Field(description="null in results restricted to some stores' members")


class ResultsScopeRead(BaseModel):
    """Results restricted to the members some stores own (a store-scoped caller's)."""

    kind: Literal["store"] = "store"
    stores: list[str]
    note: str = ("figures over these stores' members only; cost, ROI, touches and the period's sales belong to "
                 "the whole campaign and are null")


class ResultsRead(BaseModel):
    """A campaign's measured effect, computed from the facts as they are now."""

    campaign_id: str
    status: str
    attribution: Literal["last_touch", "first_touch", "linear"]
    attribution_window_days: int
    method: dict[str, str]
    launch: LaunchRead | None = Field(description="what the launch did (company-wide figures); null in results "
                                                  "restricted to some stores' members")
    overall: SegmentRead
    breakdowns: dict[str, list[SegmentRead]]
    daily: list[DayRead]
    cost: CostRead
    incremental_revenue: Decimal | None
    roi: Decimal | None = Field(description="(incremental revenue - cost) / cost")
    period: PeriodSalesRead | None = Field(description="every customer's sales in the period; null in results "
                                                       "restricted to some stores' members")
    scope: ResultsScopeRead | None = Field(None, description="null: the whole campaign; else the stores whose "
                                                             "members the figures cover")
    follow_up: DeliveryRead | None = Field(None, description="the follow-up touches and their receipts; null "
                                                             "when the campaign has no follow-up step")


class EventEffectCreate(BaseModel):
    """Attendees of an event and who to compare them with: a list of non-attendees, or a segment
    (every customer matching ``comparison`` the day before the event, attendees left out)."""

    model_config = ConfigDict(extra="forbid")

    event_date: Day
    attendees: list[CustomerId] = Field(min_length=1, max_length=100_000)
    non_attendees: list[CustomerId] | None = Field(None, min_length=1, max_length=100_000)
    comparison: AudienceFilter | None = None
    window_days: int = Field(90, ge=1, le=365, description="days compared before and from the event day")

    @model_validator(mode="after")
    def _one_comparison(self) -> EventEffectCreate:
        if (self.non_attendees is None) == (self.comparison is None):
            raise ValueError("give exactly one of non_attendees and comparison")
        return self


class PeriodRead(BaseModel):
    customers: int
    buyers: int
    purchases: int
    spend: Decimal
    spend_per_customer: Decimal
    avg_interval_days: float | None
    customers_with_interval: int


class ChangeRead(BaseModel):
    spend_per_customer: Decimal
    avg_interval_days: float | None


class GroupEffectRead(BaseModel):
    customers: int
    before: PeriodRead
    after: PeriodRead
    change: ChangeRead


class EventEffectRead(BaseModel):
    event_date: date
    window_days: int
    attendees: GroupEffectRead
    non_attendees: GroupEffectRead
    difference_in_differences: ChangeRead


# -- issue 12, export (H4) ------------------------------------------------------------------------


class TouchExportRead(BaseModel):
    """A touch sent to the customer and what the channel systems' receipts said of it (issue 14)."""

    touch_id: str
    campaign_id: str
    step: Literal["initial", "follow_up"]
    channel: str
    sent_at: str
    status: Literal["pending", "delivered", "failed", "opened", "replied"]
    failure_reason: str | None = None


class CampaignsExport(BaseModel):
    """Campaigns' part of a customer's export (``GET /v1/customers/{id}/export`` on identity gathers it)."""

    customer_id: str
    campaigns: list[CampaignItem]
    touches: list[TouchExportRead] = Field(default_factory=list, description="touches sent and their receipts")
