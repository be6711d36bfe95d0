"""Campaign definitions are validated field by field; states move only along the allowed paths."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from services.campaigns.domain.definition import AudienceFilter, Definition, IntRange, MoneyRange, next_status
from shared.http.errors import Conflict

BASE = {"name": "Spring launch", "objective": "product_launch", "channel": "sms",
        "starts_at": "2026-04-01T10:00:00+08:00", "ends_at": "2026-04-15T10:00:00+08:00"}


def _errors(**changes) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        Definition.model_validate({**BASE, **changes})
    return {".".join(str(p) for p in e["loc"]): e["msg"] for e in caught.value.errors()}


def test_defaults_are_a_tenth_in_control_and_a_fourteen_day_window():
    d = Definition.model_validate(BASE)
    assert d.control_share == Decimal("0.10")
    assert d.attribution_window_days == 14
    assert d.window_ms() == 14 * 86_400_000
    assert d.costs.fixed == Decimal("0.00") and d.bonus_multiplier is None


def test_each_error_names_its_field():
    errors = _errors(ends_at="2026-03-01T10:00:00+08:00", control_share="1.5", channel="fax",
                     audience={"spend": {"min": "10.005"}, "recency_days": {"min": 30, "max": 7}},
                     costs={"per_touch": "-1"}, bonus_multiplier="0.5")
    assert set(errors) == {"ends_at", "control_share", "channel", "audience.spend.min", "audience.recency_days.max",
                           "costs.per_touch", "bonus_multiplier"}
    assert "after starts_at" in errors["ends_at"]
    assert "below min" in errors["audience.recency_days.max"]


def test_times_need_a_timezone_and_unknown_fields_are_refused():
    errors = _errors(starts_at="2026-04-01T10:00:00", surprise=1)
    assert set(errors) == {"starts_at", "surprise"}


def test_a_range_needs_a_bound():
    with pytest.raises(ValidationError):
        IntRange()
    assert IntRange(min=2).holds(2) and not IntRange(min=2).holds(1) and not IntRange(max=5).holds(None)
    assert MoneyRange(min=Decimal("100.00"), max=Decimal("200.00")).holds_minor(20000)
    assert not MoneyRange(max=Decimal("199.99")).holds_minor(20000)


def test_an_empty_list_is_not_a_criterion():
    with pytest.raises(ValidationError):
        AudienceFilter(tiers=[])


@pytest.mark.parametrize(("status", "action", "target"), [
    ("draft", "schedule", "scheduled"), ("scheduled", "unschedule", "draft"), ("draft", "launch", "running"),
    ("scheduled", "launch", "running"), ("running", "pause", "paused"), ("scheduled", "pause", "paused"),
    ("running", "complete", "completed"), ("paused", "complete", "completed"), ("running", "cancel", "cancelled"),
    ("draft", "cancel", "cancelled"),
])
def test_allowed_moves(status, action, target):
    assert next_status(status, action, launched=True) == target


def test_resume_goes_back_to_where_the_pause_came_from():
    assert next_status("paused", "resume", paused_from="scheduled") == "scheduled"
    assert next_status("paused", "resume", paused_from="running") == "running"


@pytest.mark.parametrize(("status", "action"), [
    ("running", "launch"), ("completed", "launch"), ("cancelled", "schedule"), ("draft", "pause"),
    ("completed", "cancel"), ("draft", "complete"), ("running", "resume"),
])
def test_refused_moves_say_what_is_allowed(status, action):
    with pytest.raises(Conflict) as caught:
        next_status(status, action, launched=True)
    assert caught.value.code == "invalid_transition" and f"cannot {action} a {status}" in caught.value.message


def test_a_campaign_that_never_launched_cannot_complete():
    with pytest.raises(Conflict):
        next_status("paused", "complete", launched=False)
