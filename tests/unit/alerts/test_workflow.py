"""The workflow: desired alerts diffed against held ones (raise, repeat, duplicates, clear, suppression,
expiry), merges (fold and give back), acknowledge and resolve, age and SLA."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.alerts.domain.evaluate import Desired, Evaluation, Trigger
from services.alerts.domain.facts import Owner
from services.alerts.domain.rules import DEFAULT_RULES
from services.alerts.domain.workflow import (
    WorkflowError,
    acknowledge,
    alert_id,
    give_back,
    move,
    reconcile,
    resolve,
    sla,
)

NOW = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
RULES = {r.type: r for r in DEFAULT_RULES}
OWNER = Owner("SH-001")


def complaint(*keys: str, hours_ago: int = 1) -> Evaluation:
    triggers = tuple(Trigger(k, NOW - timedelta(hours=hours_ago + i)) for i, k in enumerate(keys))
    return Evaluation({"complaint": Desired("complaint", "red", triggers, {"occurrences": len(keys)})}, None)


def run(ev: Evaluation, type_: str = "complaint", current=None, resolved=None, covered=(), as_of=NOW, owner=OWNER):
    return reconcile("c_a", ev, (RULES[type_],), current=current or {}, last_resolved=resolved or {},
                     covered=set(covered), owner=owner, as_of=as_of)


def test_a_complaint_raises_one_red_alert_with_a_deterministic_id():
    changes, _ = run(complaint("k1"))
    assert [c.kind for c in changes] == ["raised"]
    a = changes[0].alert
    assert a.alert_id == alert_id("c_a", "complaint", "k1") and a.alert_id.startswith("al_")
    assert (a.status, a.severity, a.store_id, a.repeats, a.opened_at, a.origin_id) == ("open", "red", "SH-001", 0,
                                                                                       NOW, "c_a")
    assert changes[0].triggers == ("k1",)


def test_duplicates_and_replays_raise_nothing_new():
    # The trigger is covered by the alert that answered it, open or resolved.
    assert run(complaint("k1"), covered={"k1"}) == ([], None)
    held = run(complaint("k1"))[0][0].alert
    assert run(complaint("k1"), current={"complaint": held}, covered={"k1"}) == ([], None)


def test_a_new_complaint_while_open_is_a_repeat_and_reopens_an_acknowledged_alert():
    held = replace(run(complaint("k1"))[0][0].alert, status="acknowledged", acknowledged_by="key_1")
    changes, _ = run(complaint("k2", "k1"), current={"complaint": held}, covered={"k1"},
                     as_of=NOW + timedelta(hours=2))
    assert [(c.kind, c.triggers) for c in changes] == [("repeated", ("k2",))]
    a = changes[0].alert
    assert (a.alert_id, a.status, a.repeats, a.updated_at) == (held.alert_id, "open", 1, NOW + timedelta(hours=2))


def test_two_complaints_at_once_open_one_alert_from_the_earliest_with_one_repeat():
    changes, _ = run(complaint("k_late", "k_early"))  # k_early happened an hour before k_late
    assert len(changes) == 1
    assert changes[0].alert.alert_id == alert_id("c_a", "complaint", "k_early")
    assert changes[0].alert.repeats == 1 and changes[0].triggers == ("k_early", "k_late")


def _yellow(day: str) -> Evaluation:
    trigger = Trigger(f"c_a|churn_yellow|seen={day}", NOW)
    return Evaluation({"churn_yellow": Desired("churn_yellow", "yellow", (trigger,), {"visits_last_30": 1})}, None)


def test_a_condition_that_clears_resolves_itself_and_suppression_keeps_it_from_coming_straight_back():
    raised = run(_yellow("2026-11-20"), "churn_yellow")[0][0].alert
    changes, _ = run(Evaluation({}, None), "churn_yellow", current={"churn_yellow": raised},
                     as_of=NOW + timedelta(days=1))
    assert [(c.kind, c.alert.resolution, c.alert.resolved_by) for c in changes] == [("resolved", "cleared", "system")]
    cleared = changes[0].alert
    # Back three days later: suppressed for 14 days after the resolution, looked at again when it ends.
    changes, nxt = run(_yellow("2026-11-24"), "churn_yellow", resolved={"churn_yellow": cleared.resolved_at},
                       as_of=NOW + timedelta(days=4))
    assert changes == [] and nxt == NOW + timedelta(days=15)
    changes, _ = run(_yellow("2026-12-05"), "churn_yellow", resolved={"churn_yellow": cleared.resolved_at},
                     as_of=NOW + timedelta(days=15))
    assert [c.kind for c in changes] == ["raised"] and changes[0].alert.alert_id != raised.alert_id


def test_a_held_condition_refreshes_silently_and_is_news_only_when_its_owner_changes():
    raised = run(_yellow("2026-11-20"), "churn_yellow")[0][0].alert
    changes, _ = run(_yellow("2026-11-21"), "churn_yellow", current={"churn_yellow": raised},
                     as_of=NOW + timedelta(days=1))
    assert [(c.kind, c.announce, c.triggers) for c in changes] == [("updated", False,
                                                                    ("c_a|churn_yellow|seen=2026-11-21",))]
    changes, _ = run(_yellow("2026-11-21"), "churn_yellow", current={"churn_yellow": raised},
                     covered={"c_a|churn_yellow|seen=2026-11-21"}, owner=Owner("SH-009"))
    assert [(c.kind, c.announce, c.alert.store_id) for c in changes] == [("updated", True, "SH-009")]


def test_an_event_alert_expires_when_its_rule_says_so():
    ev = Evaluation({"tier_upgrade": Desired("tier_upgrade", "info", (Trigger("upgrade|t1", NOW),), {})}, None)
    changes, nxt = run(ev, "tier_upgrade")
    assert nxt == NOW + timedelta(days=14)
    held = changes[0].alert
    assert run(ev, "tier_upgrade", current={"tier_upgrade": held}, covered={"upgrade|t1"}) == (
        [], NOW + timedelta(days=14))  # held and already covered: only the expiry to wait for
    nothing = Evaluation({}, None)
    assert run(nothing, "tier_upgrade", current={"tier_upgrade": held}, as_of=NOW + timedelta(days=13)) == (
        [], NOW + timedelta(days=14))
    changes, _ = run(nothing, "tier_upgrade", current={"tier_upgrade": held}, as_of=NOW + timedelta(days=14))
    assert [(c.kind, c.alert.resolution) for c in changes] == [("resolved", "expired")]
    # A complaint never expires by itself: someone has to resolve it.
    complaint_alert = run(complaint("k1"))[0][0].alert
    assert run(Evaluation({}, None), current={"complaint": complaint_alert}, as_of=NOW + timedelta(days=400)) == \
        ([], None)


def test_ack_then_resolve_with_who_when_and_note():
    a = run(complaint("k1"))[0][0].alert
    acked = acknowledge(a, by="key_op", note="calling", at=NOW + timedelta(minutes=5)).alert
    assert (acked.status, acked.acknowledged_by, acked.acknowledged_at) == ("acknowledged", "key_op",
                                                                           NOW + timedelta(minutes=5))
    assert acknowledge(acked, by="key_op", note=None, at=NOW) is None  # already acknowledged: nothing to do
    done = resolve(acked, by="key_mgr", note="apology sent", at=NOW + timedelta(hours=3)).alert
    assert (done.status, done.resolved_by, done.resolution, done.note) == ("resolved", "key_mgr", "manual",
                                                                          "apology sent")
    assert done.acknowledged_note == "calling"  # each step keeps its own note
    with pytest.raises(WorkflowError):
        resolve(done, by="key_mgr", note="again", at=NOW)
    with pytest.raises(WorkflowError):
        acknowledge(done, by="key_mgr", note=None, at=NOW)


def test_age_and_sla_breach_by_severity():
    hours = {"red": 24, "yellow": 72, "info": 168}
    a = run(complaint("k1"))[0][0].alert
    s = sla(a, hours=hours, now=NOW + timedelta(hours=23))
    assert (s.age_s, s.due_at, s.breached) == (23 * 3600, NOW + timedelta(hours=24), False)
    assert sla(a, hours=hours, now=NOW + timedelta(hours=25)).breached is True
    done = resolve(a, by="k", note="n", at=NOW + timedelta(hours=2)).alert
    s = sla(done, hours=hours, now=NOW + timedelta(days=9))
    assert (s.age_s, s.breached) == (7200, False)  # age stops at the resolution


def test_a_merge_moves_or_folds_alerts_and_an_unmerge_gives_them_back_exactly():
    mine = replace(run(complaint("k1"))[0][0].alert, repeats=2)
    theirs = replace(mine, alert_id="al_b", customer_id="c_b", origin_id="c_b", repeats=1, status="acknowledged")
    # No alert of that type at the survivor: it simply changes hands.
    [moved] = move(theirs, to="c_a", held=None, at=NOW)
    assert (moved.kind, moved.alert.customer_id, moved.alert.origin_id) == ("moved", "c_a", "c_b")
    # One at the survivor: folded into it (one open alert per customer and type).
    folded, grown = move(theirs, to="c_a", held=mine, at=NOW)
    assert (folded.alert.status, folded.alert.resolution, folded.alert.merged_into, folded.alert.folded) == (
        "resolved", "merged", mine.alert_id, 2)
    assert grown.alert.repeats == 2 + 1 + 1
    back = give_back(folded.alert, to="c_b", into=grown.alert, at=NOW)
    assert [c.kind for c in back] == ["reopened", "updated"]
    assert replace(back[0].alert, updated_at=theirs.updated_at) == theirs
    assert back[1].alert.repeats == mine.repeats
