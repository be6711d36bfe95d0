"""Time-driven behaviour through the handlers: expiry, expiry notices, tier reviews, statements, rules."""

from __future__ import annotations

import json
import os

from services.loyalty import messages
from services.loyalty.handlers import queries, timers
from shared.contract.messages import decode
from tests.integration.loyalty.conftest import Clock, at, deps_for, purchase_msg, refund_msg
from tests.integration.loyalty.invariants import check_invariants


def _kinds(outcome) -> list:
    return [decode(m.value) for m in outcome.outbox]


def test_expiry_notice_and_expiry_fire_from_the_schedule_once_each(store):
    clock = Clock("2026-01-15 11:00")
    deps = deps_for(store, clock)
    messages.consume([purchase_msg("e1", "100.00", "2026-01-15 10:00", record="c_e")], deps=deps)
    assert store.account("c_e").next_due_ms is not None
    clock.set("2026-12-16 23:59")
    assert _kinds(timers.run_due(deps=deps)) == []
    clock.set("2026-12-17 00:00")  # 30 days before 2027-01-16 00:00
    notice = _kinds(timers.run_due(deps=deps))
    assert [(n.kind, n.points, n.expires_at, n.balance) for n in notice] == [
        ("loyalty.expiry_announced", 100, at("2027-01-16 00:00"), 100)]
    assert notice[0].announcement_id == "exp:c_e:2027-01-15T16:00:00.000000Z"
    clock.set("2026-12-20 00:00")
    assert _kinds(timers.run_due(deps=deps)) == []  # announced once
    messages.consume([purchase_msg("e1", "100.00", "2026-01-15 10:00", record="c_e")], deps=deps)  # redelivered
    clock.set("2027-01-16 00:00")
    expired = _kinds(timers.run_due(deps=deps))
    assert [(m.kind, getattr(m, "points", None)) for m in expired if m.kind != "view.part"] == [
        ("loyalty.points_expired", 100)]
    assert [m.value["points_balance"] for m in expired if m.kind == "view.part"] == [0]
    assert check_invariants(store, ["c_e"]) == {"c_e": 0}
    assert _kinds(timers.run_due(deps=deps)) == []


def test_tier_review_downgrades_on_time_from_the_schedule(store):
    clock = Clock("2027-01-08 13:00")
    deps = deps_for(store, clock)
    buys = [purchase_msg(f"t{i}", "750.00", when, record="c_t") for i, when in enumerate(
        ["2026-11-10 12:00", "2026-11-20 12:00", "2026-12-05 12:00", "2026-12-15 12:00", "2027-01-03 12:00",
         "2027-01-08 12:00"])]
    up = _kinds(messages.consume(buys, deps=deps))
    changes = [(m.previous, m.tier, m.direction) for m in up if m.kind == "loyalty.tier_changed"]
    assert changes == [(None, "C", "upgrade")]
    clock.set("2027-02-01 00:00")
    assert [m for m in _kinds(timers.run_due(deps=deps)) if m.kind == "loyalty.tier_changed"] == []  # Nov..Jan holds
    clock.set("2027-03-01 00:00:01")
    down = [m for m in _kinds(timers.run_due(deps=deps)) if m.kind == "loyalty.tier_changed"]
    assert [(m.previous, m.tier, m.direction) for m in down] == [("C", None, "downgrade")]
    assert down[0].change_id == "tier:c_t:2027-02-28T16:00:00.000000Z:C>-"
    history = queries.tier_history("c_t", deps=deps)
    assert [(h["at"], h["tier"]) for h in history["history"]] == [("2027-01-08T12:00:00+08:00", "C"),
                                                                   ("2027-03-01T00:00:00+08:00", None)]


def test_statements_are_exact_per_month_and_a_late_event_lands_in_the_month_it_arrives(store):
    clock = Clock("2026-11-10 12:00")
    deps = deps_for(store, clock)
    messages.consume([purchase_msg("s1", "300.00", "2026-11-10 11:00", record="c_st"),
                      purchase_msg("s2", "200.00", "2026-11-11 11:00", record="c_st")], deps=deps)
    clock.set("2026-12-03 09:00")
    messages.consume([refund_msg("s1-r", "s1", "150.00", "2026-12-03 08:00", record="c_st"),
                      purchase_msg("late", "40.00", "2026-11-20 10:00", record="c_st")], deps=deps)
    nov = queries.monthly_statement("c_st", month="2026-11", deps=deps)
    dec = queries.monthly_statement("c_st", month="2026-12", deps=deps)
    assert {k: nov[k] for k in ("opening", "earned", "refunded", "redeemed", "expired", "adjusted", "closing",
                                "complete")} == {"opening": 0, "earned": 500, "refunded": 0, "redeemed": 0,
                                                 "expired": 0, "adjusted": 0, "closing": 500, "complete": True}
    assert {k: dec[k] for k in ("opening", "earned", "refunded", "closing", "complete")} == {
        "opening": 500, "earned": 40, "refunded": 150, "closing": 390, "complete": False}
    clock.set("2027-10-20 09:00")  # 90 days before the November lots expire
    oct_2027 = queries.monthly_statement("c_st", month="2027-10", deps=deps)
    assert oct_2027["expiring"] == [{"expires_at": "2027-11-11T00:00:00+08:00", "points": 150},
                                    {"expires_at": "2027-11-12T00:00:00+08:00", "points": 200},
                                    {"expires_at": "2027-11-21T00:00:00+08:00", "points": 40}]
    assert oct_2027["expiring_total"] == 390


def test_rules_file_is_reloaded_when_it_changes_and_new_versions_never_rewrite_the_past(store, tmp_path):
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"earning": {"categories": {"skincare": "2"}}}))
    clock = Clock("2026-11-01 12:00")
    deps = deps_for(store, clock, rules_file=str(rules))
    messages.consume([purchase_msg("f1", "100.00", "2026-10-01 10:00", record="c_rf", category="skincare")], deps=deps)
    assert store.account("c_rf").balance == 200
    rules.write_text(json.dumps({"versions": [
        {"earning": {"categories": {"skincare": "2"}}},
        {"effective_from": "2026-11-01T00:00:00+08:00", "earning": {"points_per_unit": "3"}},
    ]}))
    os.utime(rules, ns=(1, 2_000_000_000_000_000_000))  # a different mtime even within one clock tick
    messages.consume([purchase_msg("f2", "100.00", "2026-11-01 10:00", record="c_rf", category="skincare")], deps=deps)
    assert check_invariants(store, ["c_rf"]) == {"c_rf": 200 + 300}
    rules.write_text("{ not json")
    os.utime(rules, ns=(1, 3_000_000_000_000_000_000))
    assert len(deps.rules.book().versions) == 2  # a broken file keeps the rules in force


def test_an_account_that_cannot_be_settled_on_schedule_is_postponed_and_the_others_still_fire(store, monkeypatch):
    from services.loyalty.handlers import accounts

    clock = Clock("2026-01-15 11:00")
    deps = deps_for(store, clock, schedule_retry_s=3600)
    messages.consume([purchase_msg("ok-1", "100.00", "2026-01-15 10:00", record="c_ok"),
                      purchase_msg("bad-1", "70.00", "2026-01-15 10:00", record="c_bad")], deps=deps)
    real = accounts.settle

    def broken_for_one(facts, book, *, customer_id, **kw):
        if customer_id == "c_bad":
            raise ValueError("a defect in the rules for this one account")
        return real(facts, book, customer_id=customer_id, **kw)

    monkeypatch.setattr(accounts, "settle", broken_for_one)
    clock.set("2026-12-17 00:00")  # both notices fall due (30 days before 2027-01-16 00:00)
    notices = _kinds(timers.run_due(deps=deps))  # before: raised, and the worker exited at every tick
    assert [(n.customer_id, n.points) for n in notices if n.kind == "loyalty.expiry_announced"] == [("c_ok", 100)]
    assert store.account("c_bad").next_due_ms == int(at("2026-12-17 01:00").timestamp() * 1000)
    clock.set("2026-12-17 00:30")
    assert _kinds(timers.run_due(deps=deps)) == []  # postponed: not retried at every tick
    monkeypatch.setattr(accounts, "settle", real)  # the defect is fixed and the worker restarted
    clock.set("2026-12-17 01:00")
    later = _kinds(timers.run_due(deps=deps))
    assert [(n.customer_id, n.points) for n in later if n.kind == "loyalty.expiry_announced"] == [("c_bad", 70)]
    assert check_invariants(store, ["c_ok", "c_bad"]) == {"c_ok": 100, "c_bad": 70}


def test_points_earned_after_their_expiry_was_announced_are_announced_too(store):
    # Month-end expiry with no extra months: points expire at the end of the month they were earned in,
    # so a purchase inside the notice window joins a moment already announced.
    clock = Clock("2026-03-20 11:00")
    deps = deps_for(store, clock, expiry_mode="month_end", expiry_months=0)
    first = _kinds(messages.consume([purchase_msg("me-1", "100.00", "2026-03-20 10:00", record="c_me")], deps=deps))
    notices = [(m.announcement_id, m.points, m.expires_at) for m in first if m.kind == "loyalty.expiry_announced"]
    assert notices == [("exp:c_me:2026-03-31T16:00:00.000000Z", 100, at("2026-04-01 00:00"))]
    clock.set("2026-03-25 11:00")
    more = purchase_msg("me-2", "50.00", "2026-03-25 10:00", record="c_me")
    second = _kinds(messages.consume([more], deps=deps))
    # Before: nothing, and 50 points expired unannounced. Now the member hears of all 150.
    assert [(m.announcement_id, m.points, m.balance) for m in second if m.kind == "loyalty.expiry_announced"] == [
        ("exp:c_me:2026-03-31T16:00:00.000000Z:150", 150, 150)]
    assert _kinds(messages.consume([more], deps=deps)) == []  # redelivered: nothing new
    clock.set("2026-04-01 00:00")
    expired = _kinds(timers.run_due(deps=deps))
    assert sorted(m.points for m in expired if m.kind == "loyalty.points_expired") == [50, 100]  # one per lot
    assert not [m for m in expired if m.kind == "loyalty.expiry_announced"]
