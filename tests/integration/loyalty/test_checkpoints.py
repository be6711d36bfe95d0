"""Accounts settled from their checkpoint: only recent facts are read, late facts fall back to the whole
history, and the ledger ends exactly as without checkpoints, on each store."""

from __future__ import annotations

import random
from collections import defaultdict

from services.loyalty import messages
from services.loyalty.domain import checkpoint
from services.loyalty.handlers import commands, timers
from shared.contract.facts import epoch_ms
from tests.integration.loyalty.conftest import Clock, at, bonus_msg, deps_for, merge_msg, purchase_msg, refund_msg
from tests.integration.loyalty.invariants import check_invariants


def _spy(store, monkeypatch) -> list:
    """Each purchases_of call of a settle: the ``since_ms`` it asked for and how many purchases came back."""
    calls: list = []
    real = store.purchases_of

    def spied(records, *, since_ms=None):
        rows = real(records, since_ms=since_ms)
        calls.append((since_ms, len(rows)))
        return rows

    monkeypatch.setattr(store, "purchases_of", spied)
    return calls


def _history(record: str, rng: random.Random):
    """A year of weekly purchases (some skincare), a few refunds, in the order a till uploads them."""
    msgs = []
    for week in range(48):
        day = f"2026-{1 + week // 4:02d}-{1 + 7 * (week % 4):02d} {rng.randrange(9, 21):02d}:00"
        msgs.append(purchase_msg(f"{record}-{week}", f"{rng.randrange(2000, 90000) / 100:.2f}", day, record=record,
                                 category=rng.choice(["skincare", None])))
        if week % 9 == 4:
            msgs.append(refund_msg(f"{record}-r{week}", f"{record}-{week}", "15.00", day, record=record))
    return msgs


def _ledger(store, customer: str) -> dict:
    sums: dict = defaultdict(int)
    for e in store.entries(store.records_of(customer), before=None, limit=10**6):
        sums[(e.bucket, e.rule)] += e.points
    return {k: v for k, v in sums.items() if v}


def test_a_settle_reads_only_the_facts_since_the_checkpoint_and_late_facts_reach_back(store, tmp_path,
                                                                                      monkeypatch):
    from tests.integration.loyalty.conftest import _sqlite

    clock = Clock("2026-12-20 12:00")
    config = dict(category_multipliers="skincare=2", tier_multipliers="C=1.5,B=2", expiry_days=150)
    # The monthly checkpoint alone (the latest one, beside it, has its test below).
    deps = deps_for(store, clock, checkpoint_recent_purchases=0, **config)
    plain = deps_for(_sqlite(tmp_path / "plain"), clock, checkpoint_lag_months=0, **config)  # the reference
    rng = random.Random(4)
    msgs = _history("c_cp", rng)
    for start in range(0, len(msgs), 7):  # as a till uploads them, a few at a time
        for d in (deps, plain):
            messages.consume(msgs[start:start + 7], deps=d)
    horizon = at("2026-10-01 00:00")  # two months before December
    assert checkpoint.load(store.checkpoint("c_cp")).at == horizon
    calls = _spy(store, monkeypatch)

    def feed(*new):
        calls.clear()
        for d in (deps, plain):
            messages.consume(list(new), deps=d)
        assert store.account("c_cp").view == plain.store.account("c_cp").view
        assert _ledger(store, "c_cp") == _ledger(plain.store, "c_cp")
        assert check_invariants(store, ["c_cp"]) == check_invariants(plain.store, ["c_cp"])
        return calls[0]

    # A new purchase: only the purchases since the horizon are read (weeks 36..47, and this one).
    assert deps.config.checkpoint_min_purchases <= 36  # weeks 0..35 are before the horizon
    assert feed(purchase_msg("c_cp-new", "88.00", "2026-12-20 11:00", record="c_cp")) == (epoch_ms(horizon), 13)
    # A refund of an order since the horizon: the same.
    assert feed(refund_msg("c_cp-r2", "c_cp-40", "30.00", "2026-12-20 11:30", record="c_cp"))[0] == epoch_ms(horizon)
    # A purchase dated before the horizon (a till offline since May), or a refund of an order bought
    # before it: the whole history is read again, and the checkpoint is taken anew.
    assert feed(purchase_msg("c_cp-may", "300.00", "2026-05-30 10:00", record="c_cp")) == (None, 50)
    assert feed(refund_msg("c_cp-r3", "c_cp-8", "50.00", "2026-12-20 11:45", record="c_cp")) == (None, 50)
    # A campaign grant over a window before the horizon (or one withdrawn) reaches back too.
    grant = dict(campaign="camp-cp", customer="c_cp", multiplier="2", starts="2026-05-01 00:00",
                 ends="2026-06-01 00:00")
    assert feed(bonus_msg("g-cp", **grant)) == (None, 50)
    moved = {**grant, "starts": "2026-11-01 00:00", "ends": "2026-12-01 00:00"}  # May's bonus must go
    assert feed(bonus_msg("g-cp", when="2026-12-20 11:47", **moved)) == (None, 50)
    assert feed(bonus_msg("g-cp", active=False, when="2026-12-20 11:48", **moved)) == (None, 50)
    # A merge changes which records make the customer: the whole history of both.
    messages.consume([purchase_msg("c_cp2-1", "40.00", "2026-12-01 10:00", record="c_cp2")], deps=plain)
    messages.consume([purchase_msg("c_cp2-1", "40.00", "2026-12-01 10:00", record="c_cp2")], deps=deps)
    assert feed(merge_msg("c_cp", "c_cp2", ["c_cp2"], "2026-12-20 11:50")) == (None, 51)
    # And then from the new checkpoint: weeks 36..47, the two December purchases before, and this one.
    assert feed(purchase_msg("c_cp-next", "10.00", "2026-12-20 11:55", record="c_cp")) == (epoch_ms(horizon), 15)


def test_redemptions_and_the_schedule_settle_from_the_checkpoint_exactly(store, tmp_path, monkeypatch):
    from tests.integration.loyalty.conftest import _sqlite

    clock = Clock("2026-12-20 12:00")
    deps = deps_for(store, clock, expiry_days=200)
    plain = deps_for(_sqlite(tmp_path / "plain"), clock, checkpoint_lag_months=0, expiry_days=200)
    msgs = _history("c_rd", random.Random(9))
    for d in (deps, plain):
        for start in range(0, len(msgs), 10):
            messages.consume(msgs[start:start + 10], deps=d)
    fields = dict(name="Kettle", points_cost=700, stock=5, per_member_limit=None, valid_from=None, valid_until=None,
                  active=True, description="")
    answers = []
    for d in (deps, plain):
        reward = commands.create_reward(fields, deps=d)
        red = commands.redeem("c_rd", reward_id=reward.reward_id, quantity=2, key="k1", by="key_t", deps=d)
        commands.adjust("c_rd", points=-100, reason="correction", key="k2", by="key_t", deps=d)
        clock.set("2027-01-10 12:00")
        commands.cancel(red.body["redemption_id"], reason="changed mind", by="key_t", deps=d)
        clock.set("2027-03-01 00:00")  # a tier review and several lots' expiry
        timers.run_due(deps=d)
        answers.append((d.store.account("c_rd").view, _ledger(d.store, "c_rd")))
        clock.set("2026-12-20 12:00")
    assert answers[0] == answers[1]
    assert checkpoint.load(store.checkpoint("c_rd")).at == at("2027-01-01 00:00")
    assert check_invariants(store, ["c_rd"]) == check_invariants(plain.store, ["c_rd"])


def test_a_checkpoint_the_ledger_disagrees_with_gives_way_to_the_whole_history(store, tmp_path):
    from tests.integration.loyalty.conftest import _sqlite

    # A replay "as of" an earlier moment: the clock goes back past an expiry already posted.
    clock = Clock("2027-02-10 12:00")
    deps = deps_for(store, clock, expiry_days=30, checkpoint_min_purchases=0)
    plain = deps_for(_sqlite(tmp_path / "plain"), clock, checkpoint_lag_months=0, expiry_days=30)
    buys = [purchase_msg(f"bk-{d}", "100.00", f"2026-12-{d:02d} 10:00", record="c_bk") for d in (5, 20)]
    for d in (deps, plain):
        messages.consume(buys, deps=d)
    assert store.account("c_bk").balance == 0  # both lots expired in January
    clock.set("2027-01-10 12:00")  # the first lot (expired Jan 5) gone, the second (Jan 20) not yet
    for d in (deps, plain):
        messages.consume([purchase_msg("bk-late", "10.00", "2027-01-09 10:00", record="c_bk")], deps=d)
    assert store.account("c_bk").balance == plain.store.account("c_bk").balance == 110
    assert _ledger(store, "c_bk") == _ledger(plain.store, "c_bk")
    assert check_invariants(store, ["c_bk"]) == {"c_bk": 110}


def test_members_without_purchases_are_settled_and_checkpointed(store):
    # Identity's word that two records are one, before either bought anything (a WeChat follower bound to
    # a phone): the survivor is settled, with an empty account and a checkpoint, and nothing is dead-lettered.
    deps = deps_for(store, Clock("2026-12-20 12:00"), checkpoint_min_purchases=0)
    outcome = messages.consume([merge_msg("c_np1", "c_np2", ["c_np2"], "2026-12-20 11:00")], deps=deps)
    assert (outcome.processed, outcome.dead_lettered) == (1, 0)
    assert store.account("c_np1").balance == 0
    assert checkpoint.load(store.checkpoint("c_np1")).records == ("c_np1", "c_np2")
    messages.consume([purchase_msg("np-1", "25.00", "2026-12-20 11:30", record="c_np2", customer="c_np1")], deps=deps)
    assert check_invariants(store, ["c_np1"]) == {"c_np1": 25}


def test_a_late_purchase_that_takes_over_a_refunded_order_resettles_the_order_s_old_owner(store, tmp_path):
    from tests.integration.loyalty.conftest import _sqlite

    # Two purchases under one order id (a web order also rung up at a till, on another member's card): the
    # earliest owns the order's refunds. A late one dated before the first takes the refund away from it, so
    # the first owner's points change too, though none of its facts did.
    clock = Clock("2026-04-10 12:00")
    deps = deps_for(store, clock, checkpoint_lag_months=1, checkpoint_min_purchases=0)
    plain = deps_for(_sqlite(tmp_path / "plain"), clock, checkpoint_lag_months=0)
    for d in (deps, plain):
        messages.consume([purchase_msg("ow-1", "1000.00", "2026-01-10 10:00", record="c_ow1", order="ORD-1"),
                          refund_msg("ow-r", "ORD-1", "500.00", "2026-01-20 10:00", record="c_ow1")], deps=d)
    assert store.account("c_ow1").balance == 500  # floor(1000 x 500 / 1000)
    assert checkpoint.load(store.checkpoint("c_ow1")).at == at("2026-03-01 00:00")
    for d in (deps, plain):
        messages.consume([purchase_msg("ow-2", "200.00", "2026-01-05 10:00", record="c_ow2", order="ORD-1")], deps=d)
    # ow-2 owns ORD-1 now: its 200 points are refunded away (R = 500 capped at 200) and ow-1 keeps its 1000.
    assert (store.account("c_ow1").balance, store.account("c_ow2").balance) == (1000, 0)
    for d in (deps, plain):
        messages.consume([purchase_msg("ow-3", "10.00", "2026-04-10 11:00", record="c_ow1")], deps=d)
    assert (store.account("c_ow1").balance, store.account("c_ow2").balance) == (1010, 0)
    assert _ledger(store, "c_ow1") == _ledger(plain.store, "c_ow1")
    assert check_invariants(store, ["c_ow1", "c_ow2"]) == {"c_ow1": 1010, "c_ow2": 0}


def test_a_refund_that_empties_an_expired_lot_since_the_horizon_is_settled_from_the_checkpoint(store, tmp_path,
                                                                                               monkeypatch):
    from tests.integration.loyalty.conftest import _sqlite

    # B's lot expired (its expiry entry is in the ledger); a full refund of B leaves no lot at all, so the expiry
    # entry must go. The checkpoint's settle has to speak for that bucket too, not give up on the checkpoint.
    clock = Clock("2026-05-20 12:00")
    config = dict(expiry_days=10, checkpoint_lag_months=1)
    deps = deps_for(store, clock, checkpoint_min_purchases=0, **config)
    plain = deps_for(_sqlite(tmp_path / "plain"), clock, **{**config, "checkpoint_lag_months": 0})
    for d in (deps, plain):
        messages.consume([purchase_msg("ex-a", "100.00", "2026-03-10 10:00", record="c_ex"),
                          purchase_msg("ex-b", "200.00", "2026-05-01 10:00", record="c_ex")], deps=d)
    assert store.account("c_ex").balance == 0  # both lots expired (Mar 21, May 12)
    assert checkpoint.load(store.checkpoint("c_ex")).at == at("2026-04-01 00:00")
    calls = _spy(store, monkeypatch)
    for d in (deps, plain):
        messages.consume([refund_msg("ex-r", "ex-b", "200.00", "2026-05-20 11:00", record="c_ex")], deps=d)
    assert calls == [(epoch_ms(at("2026-04-01 00:00")), 1)]  # B alone, from the checkpoint
    assert _ledger(store, "c_ex") == _ledger(plain.store, "c_ex") == {
        ("p:pos/SH-001:ex-a", "base"): 100, ("x:p:pos/SH-001:ex-a", "expiry"): -100,
        ("p:pos/SH-001:ex-b", "base"): 200, ("p:pos/SH-001:ex-b", "refund"): -200}
    assert check_invariants(store, ["c_ex"]) == {"c_ex": 0}


def test_an_in_order_purchase_reads_only_what_came_since_the_latest_checkpoint(store, tmp_path, monkeypatch):
    # Issue 13: a member with a long history paid for every purchase since the monthly horizon at each new one.
    from datetime import timedelta

    from tests.integration.loyalty.conftest import _sqlite

    clock = Clock("2026-12-20 12:00")
    config = dict(category_multipliers="skincare=2", tier_multipliers="C=1.5,B=2", expiry_days=150)
    deps = deps_for(store, clock, checkpoint_recent_purchases=4, **config)
    plain = deps_for(_sqlite(tmp_path / "plain"), clock, checkpoint_lag_months=0, **config)
    msgs = _history("c_in", random.Random(4))
    for start in range(0, len(msgs), 7):
        for d in (deps, plain):
            messages.consume(msgs[start:start + 7], deps=d)
    horizon = at("2026-10-01 00:00")
    calls = _spy(store, monkeypatch)

    def feed(eid: str, when: str):
        calls.clear()
        clock.now = max(clock.now, at(when) + timedelta(minutes=5))
        for d in (deps, plain):
            messages.consume([purchase_msg(eid, "88.00", when, record="c_in")], deps=d)
        assert store.account("c_in").view == plain.store.account("c_in").view
        assert _ledger(store, "c_in") == _ledger(plain.store, "c_in")
        assert check_invariants(store, ["c_in"]) == check_invariants(plain.store, ["c_in"])
        return calls[0]

    # The history's last settle stopped at its clock (Dec 20 12:00; week 47 is dated Dec 22): each purchase in time
    # order reads from there, until four of them make a new latest checkpoint at the last one's second.
    assert feed("c_in-n1", "2026-12-23 10:00") == (epoch_ms(at("2026-12-20 12:00")), 2)
    assert feed("c_in-n2", "2026-12-23 10:10") == (epoch_ms(at("2026-12-20 12:00")), 3)
    assert feed("c_in-n3", "2026-12-23 10:20") == (epoch_ms(at("2026-12-20 12:00")), 4)
    assert feed("c_in-n4", "2026-12-23 10:30") == (epoch_ms(at("2026-12-23 10:20")), 2)
    # A late one (before the latest checkpoint, after the monthly horizon) reads from the horizon, and leaves a
    # latest checkpoint that counts it.
    assert feed("c_in-late", "2026-11-15 09:00") == (epoch_ms(horizon), 17)
    assert feed("c_in-n5", "2026-12-23 10:40") == (epoch_ms(at("2026-12-23 10:30")), 2)
    # One before the horizon reads every fact; the next from the monthly checkpoint, then from the latest again.
    assert feed("c_in-may", "2026-05-30 10:00") == (None, 55)
    assert feed("c_in-n6", "2026-12-23 10:50") == (epoch_ms(horizon), 19)
    assert feed("c_in-n7", "2026-12-23 11:00") == (epoch_ms(at("2026-12-23 10:50")), 2)
