"""The alerts service's HTTP schemas: one family per resource."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class AlertRead(BaseModel):
    """An alert with its workflow state, age and SLA."""

    alert_id: str
    customer_id: str
    type: str
    severity: Literal["info", "yellow", "red"]
    status: Literal["open", "acknowledged", "resolved"]
    store_id: str | None
    manager: str | None
    action: str
    opened_at: datetime
    updated_at: datetime
    last_trigger_at: datetime
    repeats: int
    detail: dict[str, Any]
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    acknowledged_note: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    resolution: str | None
    note: str | None
    merged_into: str | None
    age_s: int = Field(description="seconds from opening to resolution, or to now while unresolved")
    sla_due_at: datetime
    sla_breached: bool


class AlertsPage(BaseModel):
    items: list[AlertRead]
    total: int
    offset: int
    limit: int
    customer_id: str | None = Field(None, description="the customer a customer_id filter answered for (the survivor "
                                                      "when the id given was merged into another)")


class AlertAck(BaseModel):
    note: str | None = Field(None, max_length=2000)


ResolveReason = Literal["product_or_service_defect", "price_competition", "no_clear_difference", "novelty_or_habit",
                        "other"]


class AlertResolve(BaseModel):
    note: str = Field(min_length=1, max_length=2000, description="what was done")
    # Issue 15: why a churn or complaint alert ended (the four causes of churn, or "other" with a text).
    reason: ResolveReason | None = Field(None, description="for churn and complaint alerts only")
    reason_text: str | None = Field(None, max_length=2000,
                                    description="required with reason 'other'; personal free text, erased with "
                                                "the customer")


class ScanRead(BaseModel):
    as_of: datetime
    full: bool
    customers: int
    chunks: int
    seconds: float
    counts: dict[str, int]


class RuleRead(BaseModel):
    type: str
    kind: Literal["event", "condition"]
    severity: str
    owner: str
    action: str
    description: str
    enabled: bool
    suppress_days: float
    window_days: float
    expires_days: float | None
    params: dict[str, Any]


class RulesPage(BaseModel):
    items: list[RuleRead]
    source: str


class ChurnModelRead(BaseModel):
    as_of: date
    r: float
    alpha: float
    a: float
    b: float
    customers: int
    repeat_purchases: int
    fitted_at: str


class StandingRead(BaseModel):
    customer_id: str
    frequency: int = Field(description="repeat purchase days (x)")
    recency_weeks: float = Field(description="weeks from first to last purchase day (t_x)")
    age_weeks: float = Field(description="weeks from first purchase day to as_of (T)")
    p_alive: float
    expected_purchases: float


class StandingsPage(BaseModel):
    model: ChurnModelRead
    weeks: float
    items: list[StandingRead]
    total: int
    offset: int
    limit: int


# -- issue 12, export (H4) ------------------------------------------------------------------------


class ResolutionReasonRead(BaseModel):
    """Why staff resolved one of the customer's churn or complaint alerts (issue 15)."""

    alert_id: str
    type: str
    store_id: str | None
    month: str
    reason: str | None
    reason_text: str | None
    resolved_at: datetime


class AlertsExport(BaseModel):
    """Alerts' part of a customer's export (``GET /v1/customers/{id}/export`` on identity gathers it)."""

    customer_id: str
    alerts: list[AlertRead]
    resolution_reasons: list[ResolutionReasonRead] = Field(default_factory=list)  # issue 15
