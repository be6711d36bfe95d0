"""Every rule on a hand-built history: the exact alert it raises, not a millisecond before its due time;
redelivered history raises no second alert; a merge moves the same alert to the survivor.

The history belongs to ``c_m``; ``c_s`` has nothing. Times are Asia/Shanghai; each due time is worked out
by hand beside its history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.churn import ChurnModel
from shared.contract.messages import CustomerMerged, PointsExpiryAnnounced, TierChanged, ViewPartUpdated
from tests.integration.alerts.harness import Harness, channel, complaint, purchase

Z = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 20, 12, tzinfo=Z)
MS = timedelta(milliseconds=1)


def utc(moment: datetime) -> str:
    """How alert details give times: ISO in UTC (facts are kept as epoch milliseconds)."""
    return moment.astimezone(UTC).isoformat()


def midnight(d: str) -> datetime:
    return datetime.combine(date.fromisoformat(d), time(), Z)


def noon(d: str) -> datetime:
    return datetime.combine(date.fromisoformat(d), time(12), Z)


def buys(*days: str, amount: str = "100.00") -> list:
    return [purchase("c_m", f"p-{d}", noon(d), amount=amount) for d in days]


def loyalty(balance: int, tier: str | None) -> ViewPartUpdated:
    return ViewPartUpdated(customer_id="c_m", part="loyalty", value={"points_balance": balance, "tier": tier},
                           version="000000000001")


# The paper's CDNOW parameters, stored as the model in force; P(alive) computed here from the closed form
# (Fader, Hardie & Lee 2005, eq. 5), independently of lifetimes.
PAPER = ChurnModel(r=0.243, alpha=4.414, a=0.793, b=2.426, customers=2357, repeat_purchases=2457,
                   as_of=date(2026, 11, 20))


def p_alive(x: int, t_x: float, big_t: float) -> float:
    m = PAPER
    return 1 / (1 + m.a / (m.b + x - 1) * ((m.alpha + big_t) / (m.alpha + t_x)) ** (m.r + x))


@dataclass(frozen=True)
class Case:
    history: list
    detail: dict
    due: datetime | None = None  # None: raised on consumption


CASES = {
    "complaint": Case([complaint("c_m", "x1", T0 - timedelta(hours=1))],
                      {"occurrences": 1, "last_at": utc(T0 - timedelta(hours=1))}),
    "survey_low": Case([channel("c_m", "crm.survey", "s1", T0 - timedelta(hours=1), {"score": 6}, source="wechat/oa")],
                       {"occurrences": 1, "last_at": utc(T0 - timedelta(hours=1)), "value": 6}),
    "tier_upgrade": Case([TierChanged(change_id="tc1", customer_id="c_m", previous="B", tier="A", direction="upgrade",
                                      reason="visits", at=T0 - timedelta(hours=1),
                                      benefits={"birthday_gift": "100", "best_discount": "0.85"})],
                         {"occurrences": 1, "last_at": utc(T0 - timedelta(hours=1)), "value": "A",
                          "benefits": {"birthday_gift": "100", "best_discount": "0.85"}}),
    # Nine visits 10 Aug - 30 Oct (3 a month), then 5 November. On 20 November the last 30 days hold 30 Oct and
    # 5 Nov: 2 visits, not below half of 3. At midnight on 29 November 30 Oct leaves them: 1 against 9 in the
    # 90 days before.
    "churn_yellow": Case(buys("2026-08-10", "2026-08-20", "2026-08-30", "2026-09-10", "2026-09-20", "2026-09-30",
                              "2026-10-10", "2026-10-20", "2026-10-30", "2026-11-05"),
                         {"visits_last_30": 1, "visits_prior_90": 9}, midnight("2026-11-29")),
    # Six visits 10 Aug - 25 Oct (2 a month), none since: 30 quiet days at midnight on 24 November.
    "churn_red": Case(buys("2026-08-10", "2026-08-25", "2026-09-10", "2026-09-25", "2026-10-10", "2026-10-25"),
                      {"reason": "stopped_coming", "visits_last_30": 0, "visits_prior_90": 6,
                       "last_visit": "2026-10-25"}, midnight("2026-11-24")),
    # Four purchase days in the first week of 2026 for 800.00, none since. The rule looks again 7 days after
    # each evaluation (20 Nov: no model yet): at midnight on 27 November, with the model stored meanwhile.
    "churn_model": Case(buys("2026-01-05", "2026-01-07", "2026-01-09", "2026-01-12", amount="200.00"),
                        {"p_alive": round(p_alive(3, 7 / 7, (date(2026, 11, 27) - date(2026, 1, 5)).days / 7), 4)},
                        midnight("2026-11-27")),
    # Born 3 December; tier B: a gift of 80. Within 7 days at midnight on 26 November.
    "birthday": Case([channel("c_m", "crm.profile", "pr1", T0 - timedelta(days=9), {"birthday": "1990-12-03"},
                              source="wechat/oa"), loyalty(100, "B")],
                     {"days_until": 7, "tier": "B", "gift_value": "80"}, midnight("2026-11-26")),
    # 300 points expire 40 days after T0: the reminder is due 30 days before, 10 days after T0, to the second.
    "points_expiring": Case([PointsExpiryAnnounced(announcement_id="an1", customer_id="c_m", points=300,
                                                   expires_at=T0 + timedelta(days=40), balance=900, at=T0)],
                            {"points": 300, "expires_at": utc(T0 + timedelta(days=40))},
                            T0 + timedelta(days=10)),
    # First purchase on 20 November: the follow-up from the next day.
    "first_purchase": Case(buys("2026-11-20"), {"first_purchase_day": "2026-11-20"}, midnight("2026-11-21")),
    "large_balance": Case([loyalty(6000, None)], {"points_balance": 6000}),
    "contact_due": Case([loyalty(100, "A")], {"tier": "A", "cadence_days": 3}),
    "visit_due": Case([loyalty(100, "C")], {"tier": "C", "cadence_days": 30}),
}


def test_every_rule_is_covered():
    from services.alerts.domain.rules import TYPES

    assert sorted(CASES) == sorted(TYPES)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_the_rule_fires_on_time_once_and_follows_a_merge(tmp_path, rule):
    case = CASES[rule]
    h = Harness(tmp_path, T0)
    h.feed(*case.history)
    if rule == "churn_model":
        with h.store.transaction():
            h.store.put_model(PAPER, fitted_at="2026-11-20T04:00:00.000000Z")

    def mine() -> list[dict]:
        return h.alerts(type=rule)

    if case.due is not None:
        assert mine() == []
        h.now = case.due - MS
        h.scan()
        assert mine() == [], "raised before its due time"
        h.now = case.due
        assert h.scan()["customers"] >= 1
    [alert] = mine()
    assert (alert["customer_id"], alert["status"], alert["detail"]) == ("c_m", "open", case.detail)
    assert datetime.fromisoformat(alert["opened_at"].replace("Z", "+00:00")) == (case.due or T0)
    # Redelivered: nothing new.
    again = h.feed(*case.history)
    assert again.processed == 0 and [(a["alert_id"], a["repeats"]) for a in mine()] == [(alert["alert_id"], 0)]
    # Merged into c_s: the same alert, now the survivor's; redelivered again: still one.
    h.advance(minutes=1)
    h.feed(CustomerMerged(kind="customer.merged", merge_id="m1", survivor_id="c_s", merged_id="c_m",
                          records=["c_m"], at=h.now))
    h.feed(*case.history)
    h.advance(milliseconds=1)
    h.scan()
    [moved] = [a for a in mine() if a["status"] != "resolved"]
    assert (moved["alert_id"], moved["customer_id"], moved["repeats"], moved["detail"]) == (
        alert["alert_id"], "c_s", 0, case.detail)
    assert h.store.active_alerts(["c_m"]) == []
