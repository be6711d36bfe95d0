"""Read models: alerts with age and SLA, rules, churn-model standings."""

from __future__ import annotations

from datetime import datetime

from services.alerts.domain.model import Standing
from services.alerts.domain.rules import DEFAULT_PARAMS, Rule
from services.alerts.domain.workflow import Alert, sla
from services.alerts.schemas import AlertRead, ChurnModelRead, RuleRead, StandingRead
from shared.access import masking
from shared.churn import ChurnModel


def alert_read(alert: Alert, *, hours: dict[str, float], now: datetime, reveal: bool, admin: bool = False) -> AlertRead:
    """An alert as the API shows it; unless ``reveal``, staff notes withheld below admin (alerts keeps no
    customer names to scrub from them) and scrubbed of phones, e-mails and dates for an ``admin`` (the detail
    is the rules' own: counts, tiers, days; never a birthday or a text)."""
    s = sla(alert, hours=hours, now=now)
    fields = {k: getattr(alert, k) for k in AlertRead.model_fields if hasattr(alert, k)}
    if not reveal:
        fields = masking.notes(fields, withhold=not admin)
    return AlertRead(**fields, age_s=s.age_s, sla_due_at=s.due_at, sla_breached=s.breached)


def rule_read(rule: Rule) -> RuleRead:
    """A rule with its parameters as in force (defaults filled in)."""
    return RuleRead(**rule.model_dump(exclude={"params"}), kind="event" if rule.is_event else "condition",
                    params={**DEFAULT_PARAMS[rule.type], **rule.params})


def model_read(model: ChurnModel, fitted_at: str) -> ChurnModelRead:
    """A fitted model's parameters and what it was fitted on."""
    return ChurnModelRead(as_of=model.as_of, r=model.r, alpha=model.alpha, a=model.a, b=model.b,
                          customers=model.customers, repeat_purchases=model.repeat_purchases, fitted_at=fitted_at)


def standing_read(s: Standing) -> StandingRead:
    """One customer under the model."""
    return StandingRead(customer_id=s.customer_id, frequency=s.history.frequency, recency_weeks=s.history.recency,
                        age_weeks=s.history.age, p_alive=s.p_alive, expected_purchases=s.expected)
