"""Each rule on hand-built histories: exactly which alert it calls for, and when it needs a look again.

Days are Asia/Shanghai calendar days; windows are worked out by hand in each test.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.alerts.domain.evaluate import Cleared, Trigger, evaluate, visits
from services.alerts.domain.facts import CustomerFacts, Expiry, Occurrence, Purchase, home_store, owner_of
from services.alerts.domain.rules import DEFAULT_RULES, InvalidRules, merge_rules, parse_rules

Z = ZoneInfo("Asia/Shanghai")
RULES = {r.type: r for r in DEFAULT_RULES}


def at(d: date, hour: int = 12, minute: int = 0) -> datetime:
    return datetime.combine(d, time(hour, minute), Z)


def midnight(d: date) -> datetime:
    return datetime.combine(d, time(), Z)


def facts(days: list[str] = (), **kw) -> CustomerFacts:
    return CustomerFacts("c_x", purchases=tuple(Purchase(date.fromisoformat(d), "SH-001", 10000) for d in days), **kw)


def only(type_: str, f: CustomerFacts, as_of: datetime, rule=None):
    return evaluate(f, [rule or RULES[type_]], as_of, Z)


def test_complaint_is_red_at_once_and_history_after_the_window():
    c = Occurrence("complaint|pos/SH-001|x1", at(date(2026, 11, 20), 10), "SH-001")
    got = only("complaint", facts(complaints=(c,)), at(date(2026, 11, 20)))
    want = got.desired["complaint"]
    assert (want.severity, want.triggers) == ("red", (Trigger(c.key, c.at),))
    assert want.detail == {"occurrences": 1, "last_at": "2026-11-20T10:00:00+08:00"}
    # 30 days and 2 hours later the complaint is history.
    assert only("complaint", facts(complaints=(c,)), at(date(2026, 12, 20))).desired == {}


def test_survey_at_or_below_six_alerts_and_seven_does_not():
    six = Occurrence("survey|wechat/oa|s1", at(date(2026, 11, 19)), value=6)
    seven = Occurrence("survey|wechat/oa|s2", at(date(2026, 11, 20), 9), value=7)
    got = only("survey_low", facts(surveys=(six, seven)), at(date(2026, 11, 20)))
    assert got.desired["survey_low"].severity == "yellow"
    assert got.desired["survey_low"].triggers == (Trigger(six.key, six.at),)
    assert got.desired["survey_low"].detail["value"] == 6
    assert only("survey_low", facts(surveys=(seven,)), at(date(2026, 11, 20))).desired == {}


PRIOR_9 = ["2026-08-10", "2026-08-20", "2026-08-30", "2026-09-10", "2026-09-20", "2026-09-30", "2026-10-10",
           "2026-10-20", "2026-10-30"]


def test_visit_windows_are_the_last_30_days_and_the_90_before():
    days = [date.fromisoformat(d) for d in [*PRIOR_9, "2026-11-05"]]
    # As of 30 November: last 30 = 1..30 November, prior 90 = 3 August..31 October.
    v = visits(days, date(2026, 11, 30))
    assert (v.last_30, v.prior_90) == (1, 9)
    v = visits(days + [date(2026, 8, 2)], date(2026, 11, 30))
    assert (v.last_30, v.prior_90) == (1, 9)  # 2 August is 120 days back: outside both windows


def test_yellow_when_visits_fall_below_half_the_monthly_average_then_red_when_they_stop():
    f = facts([*PRIOR_9, "2026-11-05"])
    got = evaluate(f, [RULES["churn_yellow"], RULES["churn_red"]], at(date(2026, 11, 30)), Z)
    assert list(got.desired) == ["churn_yellow"]
    assert got.desired["churn_yellow"].detail == {"visits_last_30": 1, "visits_prior_90": 9}
    # 1 visit against an average of 3: yellow. It changes when 5 November leaves the last 30 days.
    assert got.next_check == midnight(date(2026, 12, 5))
    later = evaluate(f, [RULES["churn_yellow"], RULES["churn_red"]], at(date(2026, 12, 5)), Z)
    assert list(later.desired) == ["churn_red"]  # red supersedes yellow
    assert later.desired["churn_red"].detail == {"reason": "stopped_coming", "visits_last_30": 0,
                                                 "visits_prior_90": 10, "last_visit": "2026-11-05"}
    assert later.desired["churn_red"].triggers[0].key == "c_x|churn_red|last_visit=2026-11-05"
    # Two visits in the last 30 days is not below half of 3.
    assert only("churn_yellow", facts([*PRIOR_9, "2026-11-05", "2026-11-15"]), at(date(2026, 11, 30))).desired == {}


def test_red_needs_an_average_of_two_visits_a_month():
    six = ["2026-08-10", "2026-08-25", "2026-09-10", "2026-09-25", "2026-10-10", "2026-10-25"]
    got = evaluate(facts(six), [RULES["churn_yellow"], RULES["churn_red"]], at(date(2026, 11, 30)), Z)
    assert list(got.desired) == ["churn_red"]  # 6 visits in the prior 90 days = 2.0 a month, none since
    five = evaluate(facts(six[1:]), [RULES["churn_yellow"], RULES["churn_red"]], at(date(2026, 11, 30)), Z)
    assert list(five.desired) == ["churn_yellow"]  # 1.67 a month: a drop, not a red light
    patient = {r.type: r for r in merge_rules([{"type": "churn_red", "params": {"quiet_days": 45}}])}["churn_red"]
    assert only("churn_red", facts(six), at(date(2026, 11, 30)), patient).desired == {}  # 36 quiet days < 45
    # Next look: 8 December, when 10 August leaves the prior 90 days (before 9 December, 45 days after 25 October).
    assert only("churn_red", facts(six), at(date(2026, 11, 30)), patient).next_check == midnight(date(2026, 12, 8))


def test_red_when_a_customer_complained_and_then_stopped_coming():
    complaint = Occurrence("complaint|pos/SH-001|x9", at(date(2026, 10, 10), 15), "SH-001")
    f = facts(["2026-10-01", "2026-10-10"], complaints=(complaint,))
    before = only("churn_red", f, at(date(2026, 11, 8)))
    assert before.desired == {}
    assert before.next_check == midnight(date(2026, 11, 9))  # 30 days after the complaint day
    got = only("churn_red", f, at(date(2026, 11, 9)))
    assert got.desired["churn_red"].detail == {"reason": "complained_then_stopped", "days_since_complaint": 30,
                                               "last_visit": "2026-10-10"}
    came_back = facts(["2026-10-01", "2026-10-10", "2026-10-20"], complaints=(complaint,))
    assert only("churn_red", came_back, at(date(2026, 11, 9))).desired == {}


def test_a_customer_who_never_came_has_no_churn_light_and_looks_again_only_for_a_complaint():
    lenient = {r.type: r for r in merge_rules([{"type": "churn_yellow", "params": {"min_monthly_visits": 0}},
                                               {"type": "churn_red", "params": {"min_monthly_visits": 0}}])}
    for rules in (RULES, lenient):
        got = evaluate(facts(), [rules["churn_yellow"], rules["churn_red"]], at(date(2026, 11, 30)), Z)
        assert (got.desired, got.next_check) == ({}, None)
    # A complaint without a visit lights nothing, but its stop and look-back days are still looked at.
    complaint = Occurrence("complaint|pos/SH-001|x7", at(date(2026, 11, 20), 15), "SH-001")
    lights = [RULES["churn_yellow"], RULES["churn_red"]]
    got = evaluate(facts(complaints=(complaint,)), lights, at(date(2026, 11, 30)), Z)
    assert (got.desired, got.next_check) == ({}, midnight(date(2026, 12, 20)))  # 30 days after the complaint day


def test_churn_model_alerts_a_valuable_customer_whose_probability_alive_is_low():
    days = ["2026-01-10", "2026-02-10", "2026-03-10"]  # 3 days of 100.00 each = 300.00 spent
    rule = {r.type: r for r in merge_rules([{"type": "churn_model", "params": {"min_spend": "300.00"}}])}[
        "churn_model"]
    got = only("churn_model", facts(days, p_alive=0.2), at(date(2026, 11, 20)), rule)
    assert got.desired["churn_model"].detail == {"p_alive": 0.2}
    assert got.next_check == midnight(date(2026, 11, 27))
    assert only("churn_model", facts(days, p_alive=0.3), at(date(2026, 11, 20)), rule).desired == {}
    assert only("churn_model", facts(days, p_alive=0.2), at(date(2026, 11, 20))).desired == {}  # 300 < 500
    assert only("churn_model", facts(days[:2], p_alive=0.1), at(date(2026, 11, 20)), rule).desired == {}


def test_birthday_within_seven_days_with_the_gift_value_of_the_tier():
    f = facts(birthday=date(1990, 12, 3), tier="B")
    early = only("birthday", f, at(date(2026, 11, 25)))
    assert early.desired == {} and early.next_check == midnight(date(2026, 11, 26))
    got = only("birthday", f, at(date(2026, 11, 26)))
    assert got.desired["birthday"].detail == {"days_until": 7, "tier": "B", "gift_value": "80"}
    assert got.next_check == midnight(date(2026, 12, 4))
    assert only("birthday", f, at(date(2026, 12, 4))).desired == {}  # past: next year's is 364 days away
    leap = only("birthday", facts(birthday=date(2004, 2, 29), tier="A"), at(date(2027, 2, 21)))
    assert leap.desired["birthday"].detail == {"days_until": 7, "tier": "A", "gift_value": "100"}


def test_points_expiring_fire_thirty_days_ahead_to_the_second():
    now = at(date(2026, 11, 20))
    e = Expiry("expiry|a1", 300, now + timedelta(days=30, seconds=5))
    early = only("points_expiring", facts(expiries=(e,), balance=1000), now)
    assert early.desired == {} and early.next_check == now + timedelta(seconds=5)
    got = only("points_expiring", facts(expiries=(e,), balance=1000), now + timedelta(seconds=5))
    assert got.desired["points_expiring"].detail == {"points": 300, "expires_at": e.expires_at.isoformat()}
    assert got.next_check == e.expires_at
    partly = only("points_expiring", facts(expiries=(e,), balance=120), now + timedelta(seconds=5))
    assert partly.desired["points_expiring"].detail["points"] == 120  # redeemed since the announcement
    assert only("points_expiring", facts(expiries=(e,), balance=0), now + timedelta(seconds=5)).desired == {}
    assert only("points_expiring", facts(expiries=(e,)), e.expires_at).desired == {}  # gone
    # Loyalty says 280 of them expired unredeemed: the reminder closes saying so, within its 30-day horizon.
    lost = (Occurrence("expired|e1", e.expires_at, value=280),)
    assert only("points_expiring", facts(expiries=(e,), expired=lost), e.expires_at).cleared["points_expiring"] == (
        Cleared("280 points expired unredeemed", {"expired_points": 280}))
    assert only("points_expiring", facts(expired=lost), e.expires_at + timedelta(days=31)).cleared == {}


def test_tier_upgrade_first_purchase_large_balance_and_contact_cadence():
    up = Occurrence("upgrade|t1", at(date(2026, 11, 20), 9), value="A")
    assert only("tier_upgrade", facts(upgrades=(up,)), at(date(2026, 11, 20))).desired["tier_upgrade"].detail == {
        "occurrences": 1, "last_at": up.at.isoformat(), "value": "A"}
    assert only("tier_upgrade", facts(upgrades=(up,)), at(date(2026, 11, 28))).desired == {}

    first = facts(["2026-11-01"])
    day0 = only("first_purchase", first, at(date(2026, 11, 1)))
    assert day0.desired == {} and day0.next_check == midnight(date(2026, 11, 2))
    day1 = only("first_purchase", first, at(date(2026, 11, 2)))
    assert day1.desired["first_purchase"].detail == {"first_purchase_day": "2026-11-01"}
    assert day1.next_check == midnight(date(2026, 11, 15))
    assert only("first_purchase", first, at(date(2026, 11, 15))).desired == {}

    assert only("large_balance", facts(balance=5000), at(date(2026, 11, 20))).desired["large_balance"].detail == {
        "points_balance": 5000}
    assert only("large_balance", facts(balance=4999), at(date(2026, 11, 20))).desired == {}

    now = at(date(2026, 11, 20))
    assert only("contact_due", facts(tier="A"), now).desired["contact_due"].triggers[0].key == "c_x|contact_due|first"
    called = facts(tier="A", last_resolved={"contact_due": now - timedelta(days=2)})
    assert only("contact_due", called, now).desired == {}
    assert only("contact_due", called, now).next_check == now + timedelta(days=1)  # A: every 3 days
    assert "contact_due" in only("contact_due", called, now + timedelta(days=1)).desired
    assert only("contact_due", facts(tier=None), now).desired == {}


def test_account_manager_visits_are_due_every_10_15_or_30_days_by_tier():
    now = at(date(2026, 11, 20))
    first = only("visit_due", facts(tier="B"), now)
    assert first.desired["visit_due"].triggers[0].key == "c_x|visit_due|first"
    assert first.desired["visit_due"].detail == {"tier": "B", "cadence_days": 15}
    visited = now - timedelta(days=14)
    b = facts(tier="B", last_resolved={"visit_due": visited})
    assert only("visit_due", b, now).desired == {}
    assert only("visit_due", b, now).next_check == visited + timedelta(days=15)
    due = only("visit_due", b, visited + timedelta(days=15))
    assert due.desired["visit_due"].triggers[0].key == f"c_x|visit_due|after={visited.isoformat()}"
    for tier, days in (("A", 10), ("C", 30)):
        f = facts(tier=tier, last_resolved={"visit_due": visited})
        assert only("visit_due", f, visited).next_check == visited + timedelta(days=days)
    assert only("visit_due", facts(tier=None), now).desired == {}
    # Calls and visits keep their own cadence: a call made yesterday does not postpone a visit.
    called = facts(tier="A", last_resolved={"contact_due": now - timedelta(days=1)})
    assert list(evaluate(called, [RULES["contact_due"], RULES["visit_due"]], now, Z).desired) == ["visit_due"]


def test_the_owner_is_the_home_store_or_the_store_complained_at():
    purchases = (Purchase(date(2026, 11, 1), "SH-002", 1), Purchase(date(2026, 11, 2), "SH-001", 1),
                 Purchase(date(2026, 11, 2), "SH-001", 1), Purchase(date(2026, 11, 3), "SH-002", 1))
    assert home_store(purchases) == "SH-002"  # two days each; SH-002 has the most recent day
    assert home_store(purchases[:3]) == "SH-001"  # one day each; 2 November is the more recent
    complained = CustomerFacts("c_x", complaints=(Occurrence("k", at(date(2026, 11, 1)), "GZ-001"),),
                               account_manager="am-3")
    assert (owner_of(complained).store_id, owner_of(complained).manager) == ("GZ-001", "am-3")


def test_rules_are_data_a_file_overrides_them_and_a_bad_one_is_refused():
    rules = {r.type: r for r in parse_rules('[{"type": "churn_red", "suppress_days": 7, "params": {"quiet_days": 45}},'
                                            ' {"type": "birthday", "enabled": false}]')}
    assert rules["churn_red"].suppress_days == 7 and rules["churn_red"].param("quiet_days") == 45
    assert rules["churn_red"].param("min_monthly_visits") == 2.0  # untouched parameters keep their defaults
    assert rules["birthday"].enabled is False and len(rules) == len(DEFAULT_RULES)
    with pytest.raises(InvalidRules, match="known type"):
        parse_rules('[{"type": "vip_party"}]')
    with pytest.raises(InvalidRules, match="severity"):
        parse_rules('{"rules": [{"type": "complaint", "severity": "purple"}]}')
    with pytest.raises(InvalidRules, match="JSON"):
        parse_rules("{nope")
