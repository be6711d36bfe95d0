"""Alert rules as data: each has a type, a severity, an owner, a suggested action and its parameters.

The defaults below follow the business material (DOMAIN.md): the restaurant's yellow and red
lights, the supplier's feedback alarm, the cosmetics brand's moments of truth and the tier
privileges. A JSON rules file (``CRM_ALERTS_RULES_FILE``) may override any field of any rule or
disable it; it is validated here, so a bad file is refused with reasons rather than half applied.
"""

from __future__ import annotations

import json
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Severity = Literal["info", "yellow", "red"]
SEVERITIES: tuple[Severity, ...] = ("info", "yellow", "red")

# Rules that fire on an occurrence (a complaint, a survey, an upgrade): each occurrence is a trigger,
# a new one while the alert is open counts as a repeat. The others are conditions over the facts.
EVENT_TYPES = frozenset({"complaint", "survey_low", "tier_upgrade"})
RuleType = Literal["complaint", "survey_low", "churn_yellow", "churn_red", "churn_model", "birthday",
                   "points_expiring", "tier_upgrade", "first_purchase", "large_balance", "contact_due", "visit_due"]
TYPES: tuple[str, ...] = get_args(RuleType)


class Rule(BaseModel):
    """One alert rule."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: RuleType
    severity: Severity
    owner: Literal["home_store", "account_manager"] = "home_store"
    action: str = Field(min_length=1)
    description: str = ""
    enabled: bool = True
    # After a resolution, no new alert of this type for the customer for this many days.
    suppress_days: float = Field(0, ge=0)
    # Event rules: occurrences older than this are history, not news.
    window_days: float = Field(30, gt=0)
    # Event rules: an open alert with no new occurrence for this long resolves itself (None: never).
    expires_days: float | None = Field(None, gt=0)
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def is_event(self) -> bool:
        """Whether each occurrence is a trigger (else the rule is a condition over the facts)."""
        return self.type in EVENT_TYPES

    def param(self, name: str) -> Any:
        """A parameter, falling back to the default rule's value."""
        if name in self.params:
            return self.params[name]
        return DEFAULT_PARAMS[self.type][name]


DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "complaint": {},
    "survey_low": {"max_score": 6},
    "churn_yellow": {"min_monthly_visits": 1.0},
    "churn_red": {"min_monthly_visits": 2.0, "quiet_days": 30, "stop_days": 30, "complaint_lookback_days": 120},
    "churn_model": {"p_alive_below": 0.3, "min_purchase_days": 3, "min_spend": "500.00", "recheck_days": 7},
    "birthday": {"days_ahead": 7, "gift_value": {"A": "100", "B": "80", "C": "50"}},
    "points_expiring": {"days_ahead": 30},
    "tier_upgrade": {},
    "first_purchase": {"after_days": 1, "until_days": 14},
    "large_balance": {"min_points": 5000},
    "contact_due": {"cadence_days": {"A": 3, "B": 5, "C": 3}},
    "visit_due": {"cadence_days": {"A": 10, "B": 15, "C": 30}},
}

DEFAULT_RULES: tuple[Rule, ...] = (
    Rule(type="complaint", severity="red", window_days=30,
         action="Investigate, send an apology letter and fix the service; a fast fix makes a repeat purchase "
                "70% likely",
         description="A complaint raises a red alert at once."),
    Rule(type="survey_low", severity="yellow", window_days=30,
         action="Call the customer about the score and open a case with the responsible person",
         description="A survey score at or below max_score (0-10)."),
    Rule(type="churn_yellow", severity="yellow", suppress_days=14,
         action="Invite the customer to a new dishes tasting",
         description="Visits in the last 30 days fell below half of the customer's own monthly average over "
                     "the prior 90 days."),
    Rule(type="churn_red", severity="red", suppress_days=14,
         action="Investigate, send an apology letter and fix the service",
         description="A customer who averaged min_monthly_visits a month has not come for quiet_days, or "
                     "complained and then stopped coming for stop_days."),
    Rule(type="churn_model", severity="yellow", suppress_days=30,
         action="Win-back call or personal offer before the customer is gone",
         description="A valuable customer whose BG/NBD probability of still being active fell below "
                     "p_alive_below."),
    Rule(type="birthday", severity="info", owner="account_manager",
         action="Send the birthday gift or offer of the customer's tier",
         description="Birthday within days_ahead days, with the gift value of the tier."),
    Rule(type="points_expiring", severity="info",
         action="Remind the customer to redeem before the points expire",
         description="Announced points expire within days_ahead days."),
    Rule(type="tier_upgrade", severity="info", owner="account_manager", window_days=7, expires_days=14,
         action="Congratulate the customer and present the new tier's privileges",
         description="Loyalty upgraded the customer's tier."),
    Rule(type="first_purchase", severity="info",
         action="Welcome call and after-sales follow-up on the first purchase",
         description="From after_days to until_days after the customer's first purchase day."),
    Rule(type="large_balance", severity="info", suppress_days=30,
         action="Suggest a reward worth redeeming with the points balance",
         description="Unredeemed points balance of at least min_points."),
    Rule(type="contact_due", severity="info", owner="account_manager",
         action="Account-manager call due by the tier's cadence",
         description="Days since the last contact (the last resolved contact_due alert) reached the tier's "
                     "cadence_days."),
    Rule(type="visit_due", severity="info", owner="account_manager",
         action="Account-manager visit due by the tier's cadence",
         description="Days since the last visit (the last resolved visit_due alert) reached the tier's "
                     "cadence_days."),
)


class InvalidRules(ValueError):
    """A rules document that cannot be used, with reasons."""


def merge_rules(overrides: list[dict[str, Any]] | dict[str, Any]) -> tuple[Rule, ...]:
    """The default rules with a rules document's overrides applied (a list of partial rules by type)."""
    items = overrides.get("rules", []) if isinstance(overrides, dict) else overrides
    by_type = {r.type: r.model_dump() for r in DEFAULT_RULES}
    for item in items:
        if not isinstance(item, dict) or item.get("type") not in by_type:
            raise InvalidRules(f"each rule needs a known type ({', '.join(TYPES)})")
        base = by_type[item["type"]]
        by_type[item["type"]] = {**base, **item, "params": {**base["params"], **item.get("params", {})}}
    try:
        return tuple(Rule.model_validate(v) for v in by_type.values())
    except ValidationError as exc:
        reasons = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_input=False)]
        raise InvalidRules("; ".join(reasons)) from None


def parse_rules(text: str) -> tuple[Rule, ...]:
    """Rules from a JSON document (``[{"type": "churn_red", "suppress_days": 7}, …]`` or ``{"rules": […]}``)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRules(f"rules file is not valid JSON: {exc.msg}") from None
    return merge_rules(doc)
