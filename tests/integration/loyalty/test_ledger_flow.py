"""Consumption against each store: exact points whatever the arrival order, duplicates, merges,
late campaign grants, and faults in the middle of a batch."""

from __future__ import annotations

import random
import sqlite3
import time
from decimal import Decimal
from fractions import Fraction
from math import floor

import pytest

from services.loyalty import messages
from shared.contract.messages import CampaignTouched, decode
from tests.integration.loyalty.conftest import (
    Clock,
    at,
    bonus_msg,
    deps_for,
    incoming,
    merge_msg,
    purchase_msg,
    refund_msg,
)
from tests.integration.loyalty.invariants import check_invariants


def reference(orders: dict[str, tuple[str, str | None]], refunds: dict[str, list[str]]) -> int:
    """Points by the rules, computed independently: 1 point per 1.00 (2 on skincare), floor per order,
    then floor(E x (A - R) / A) with R capped at A."""
    total = 0
    for order, (amount, category) in orders.items():
        a = Fraction(Decimal(amount))
        e = floor(a * (2 if category == "skincare" else 1))
        r = min(sum((Fraction(Decimal(x)) for x in refunds.get(order, [])), Fraction(0)), a)
        total += floor(e * (a - r) / a) if a else e
    return total


def history(seed: int, record: str, n: int):
    """The same amounts for any ``record`` (ids carry the record, so histories never collide)."""
    rng = random.Random(seed)
    orders, refunds, msgs = {}, {}, []
    for i in range(n):
        oid = f"{record}-o{i}"
        amount = f"{rng.randrange(1, 80000) / 100:.2f}"
        category = rng.choice(["skincare", "makeup", None])
        orders[oid] = (amount, category)
        msgs.append(purchase_msg(oid, amount, f"2026-09-{1 + i % 28:02d} {rng.randrange(8, 22):02d}:00",
                                 record=record, category=category))
        for j in range(rng.choice([0, 0, 1, 2, 3])):
            part = f"{rng.randrange(1, int(Decimal(amount) * 60) + 2) / 100:.2f}"
            refunds.setdefault(oid, []).append(part)
            # Some refunds are dated (and arrive) before their purchase.
            when = rng.choice(["2026-08-30 10:00", "2026-10-05 10:00"])
            msgs.append(refund_msg(f"{record}-r{i}-{j}", oid, part, when, record=record))
    return orders, refunds, msgs


def feed(deps, msgs, rng: random.Random, *, check: list[str]) -> None:
    """Feed messages in random batches, checking the invariants after each batch."""
    cut = sorted(rng.sample(range(1, len(msgs)), min(6, len(msgs) - 1)))
    for a, b in zip([0, *cut], [*cut, len(msgs)], strict=True):
        messages.consume(msgs[a:b], deps=deps)
        check_invariants(deps.store, check)


def test_any_arrival_order_with_duplicates_gives_the_reference_balance(store):
    clock = Clock("2026-11-01 12:00")
    deps = deps_for(store, clock, category_multipliers="skincare=2")
    rng = random.Random(3)
    for shuffle in range(3):
        record = f"c_s{shuffle}"
        orders, refunds, msgs = history(8, record, 25)
        msgs += rng.sample(msgs, 10)  # redelivered duplicates
        rng.shuffle(msgs)
        feed(deps, msgs, rng, check=[record])
        expected = reference(orders, refunds)
        assert expected > 0
        assert check_invariants(store, [record])[record] == expected
        assert store.account(record).balance == expected


def test_redelivery_and_replay_change_nothing_and_publish_nothing(store):
    clock = Clock("2026-11-01 12:00")
    deps = deps_for(store, clock)
    orders, refunds, msgs = history(9, "c_r", 10)
    first = messages.consume(msgs, deps=deps)
    assert first.processed == len(msgs) and first.duplicates == 0
    entries = store.entries(["c_r"], before=None, limit=1000)
    again = messages.consume(msgs, deps=deps)
    assert again.duplicates == len(msgs) and again.outbox == []
    assert store.entries(["c_r"], before=None, limit=1000) == entries
    assert store.account("c_r").balance == reference({o: (a, None) for o, (a, _) in orders.items()}, refunds)
    twice = purchase_msg("c_r-twice", "5.00", "2026-10-01 10:00", record="c_r")
    both = messages.consume([twice, twice], deps=deps)
    assert (both.processed, both.duplicates) == (1, 1)


def test_view_part_versions_grow_per_customer_and_carry_the_balance(store):
    clock = Clock("2026-11-01 12:00")
    deps = deps_for(store, clock)
    before = time.time_ns() // 1000
    out1 = messages.consume([purchase_msg("v1", "100.00", "2026-10-01 10:00", record="c_v")], deps=deps)
    out2 = messages.consume([purchase_msg("v2", "50.00", "2026-10-02 10:00", record="c_v")], deps=deps)
    after = time.time_ns() // 1000
    parts = [decode(m.value) for m in out1.outbox + out2.outbox if decode(m.value).kind == "view.part"]
    # Versions grow per customer and never fall below the real clock in microseconds (not the service's
    # clock, here set a month back): a store rebuilt from scratch still publishes above what came before.
    v1, v2 = (int(p.version) for p in parts)
    assert before <= v1 < v2 <= max(after, v1 + 1) and {len(p.version) for p in parts} == {20}
    assert parts[-1].value["points_balance"] == 150 and parts[-1].value["tier"] is None
    assert parts[-1].value["expiring"] == [{"points": 100, "expires_at": "2027-10-02T00:00:00+08:00"},
                                           {"points": 50, "expires_at": "2027-10-03T00:00:00+08:00"}]
    assert {m.key for m in out1.outbox + out2.outbox} == {b"c_v"}


def test_late_campaign_bonus_and_its_withdrawal_end_the_same_as_any_order(store):
    clock = Clock("2026-11-01 12:00")
    deps = deps_for(store, clock)
    grant = dict(campaign="camp-9", multiplier="3", starts="2026-10-01 00:00", ends="2026-10-08 00:00")
    for record, bonus_first in (("c_b1", True), ("c_b2", False)):
        buys = [purchase_msg(f"{record}-in", "100.00", "2026-10-03 10:00", record=record),
                purchase_msg(f"{record}-out", "100.00", "2026-10-09 10:00", record=record)]
        bonus = bonus_msg(f"g-{record}", customer=record, **grant)
        messages.consume([bonus, *buys] if bonus_first else buys, deps=deps)
        if not bonus_first:
            messages.consume([bonus], deps=deps)
        assert check_invariants(store, [record])[record] == 100 * 3 + 100
    # Withdrawn later: the bonus points are taken back with an entry that names the grant.
    withdraw = bonus_msg("g-c_b2", customer="c_b2", active=False, when="2026-10-02 00:00", **grant)
    messages.consume([withdraw], deps=deps)
    assert check_invariants(store, ["c_b2"])["c_b2"] == 200
    bonus_entries = [e for e in store.entries(["c_b2"], before=None, limit=100) if e.rule == "campaign:camp-9"]
    assert sorted(e.points for e in bonus_entries) == [-200, 200]
    last = min(bonus_entries, key=lambda e: e.points)
    assert last.entry_id == "p:pos/SH-001:c_b2-in|campaign:camp-9|2"
    assert last.cause["correction"] == {"from": 200, "to": 0, "trigger": ["grant:g-c_b2"]}


def test_merge_combines_ledgers_and_tier_and_unmerge_splits_back_exactly(store):
    clock = Clock("2027-01-31 20:00")
    deps = deps_for(store, clock)
    a = [purchase_msg(f"a{d}", "750.00", f"2027-01-{d:02d} 12:00", record="c_a") for d in range(1, 7)]
    b = [purchase_msg(f"b{d}", "750.00", f"2027-01-{d + 10:02d} 12:00", record="c_b") for d in range(1, 7)]
    messages.consume(a + b, deps=deps)
    assert (store.account("c_a").tier, store.account("c_b").tier) == ("C", "C")  # 6 visits, 4,500.00 each
    merged = messages.consume([merge_msg("c_a", "c_b", ["c_b"], "2027-01-31 20:00")], deps=deps)
    kinds = [decode(m.value) for m in merged.outbox]
    assert store.account("c_a").balance == 9000 and store.account("c_a").tier == "B"  # 12 visits, 9,000.00
    changed = [k for k in kinds if k.kind == "loyalty.tier_changed"]
    assert [(c.customer_id, c.previous, c.tier, c.direction) for c in changed] == [("c_a", "C", "B", "upgrade")]
    assert changed[0].benefits["best_discount"] == "0.88"
    assert check_invariants(store, ["c_a", "c_b"]) == {"c_a": 9000}
    messages.consume([merge_msg("c_a", "c_b", ["c_b"], "2027-01-31 21:00", undo=True)], deps=deps)
    assert check_invariants(store, ["c_a", "c_b"]) == {"c_a": 4500, "c_b": 4500}
    assert (store.account("c_a").tier, store.account("c_b").tier) == ("C", "C")


def test_a_merge_that_arrives_before_the_merged_records_events_still_combines(store):
    clock = Clock("2026-12-01 12:00")
    deps = deps_for(store, clock)
    messages.consume([merge_msg("c_m1", "c_m2", ["c_m2"], "2026-11-20 10:00"),
                      purchase_msg("m1", "10.00", "2026-11-01 10:00", record="c_m1")], deps=deps)
    # Identity resolved this event before the merge (so it names c_m2 as its customer); it arrives late.
    late = purchase_msg("m2", "20.00", "2026-11-02 10:00", record="c_m2", customer="c_m2")
    messages.consume([late], deps=deps)
    assert check_invariants(store, ["c_m1", "c_m2"]) == {"c_m1": 30}


def test_transient_fault_mid_batch_rolls_back_and_the_retry_is_exact(sqlite_store, monkeypatch):
    clock = Clock("2026-11-01 12:00")
    deps = deps_for(sqlite_store, clock)
    orders, refunds, msgs = history(21, "c_f", 12)
    real = sqlite_store.add_entries
    calls = {"n": 0}

    def flaky(entries):
        calls["n"] += 1
        real(entries)
        if calls["n"] == 1:
            raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(sqlite_store, "add_entries", flaky)
    with pytest.raises(sqlite3.OperationalError):
        messages.consume(msgs, deps=deps)
    assert sqlite_store.entries(["c_f"], before=None, limit=10) == []  # nothing of the failed batch landed
    messages.consume(msgs, deps=deps)  # the runner's retry
    assert check_invariants(sqlite_store, ["c_f"])["c_f"] == reference(
        {o: (a, None) for o, (a, _) in orders.items()}, refunds)


def test_a_poison_message_is_dead_lettered_alone_and_the_rest_land(store):
    clock = Clock("2026-11-01 12:00")
    deps = deps_for(store, clock)
    good = purchase_msg("ok1", "10.00", "2026-10-01 10:00", record="c_p")
    bad = purchase_msg("bad1", "10.00", "2026-10-01 10:00", record="c_p")
    bad = bad.__class__(bad.value.replace(b'"crm.purchase"', b'"crm.purchase","data":0,"x":'), bad.topic,
                        bad.partition, bad.offset)
    outcome = messages.consume([good, bad], deps=deps)
    assert outcome.dead_lettered == 1 and outcome.processed == 1
    assert store.account("c_p").balance == 10
    assert store.dead_letter_count() == 1


def test_refund_of_points_already_spent_is_debt_and_never_a_negative_balance(store):
    from services.loyalty.handlers import commands

    clock = Clock("2026-11-01 12:00")
    deps = deps_for(store, clock)
    messages.consume([purchase_msg("d1", "100.00", "2026-10-30 10:00", record="c_d")], deps=deps)
    reward = commands.create_reward(dict(name="Mug", points_cost=100, stock=5, per_member_limit=None,
                                         valid_from=None, valid_until=None, active=True, description=""), deps=deps)
    commands.redeem("c_d", reward_id=reward.reward_id, quantity=1, key=None, by="key_x", deps=deps)
    messages.consume([refund_msg("d1-r", "d1", "100.00", "2026-11-01 11:00", record="c_d")], deps=deps)
    assert check_invariants(store, ["c_d"]) == {"c_d": 0}
    assert store.account("c_d").debt == 100
    messages.consume([purchase_msg("d2", "30.00", "2026-11-01 11:30", record="c_d")], deps=deps)
    assert check_invariants(store, ["c_d"]) == {"c_d": 0}
    assert store.account("c_d").debt == 70


def test_a_campaign_grant_loyalty_cannot_honour_is_dead_lettered_with_its_reason(store):
    clock = Clock("2026-11-01 12:00")
    deps = deps_for(store, clock)
    buy = purchase_msg("gx-1", "100.00", "2026-10-03 10:00", record="c_gx")
    window = dict(campaign="camp-x", customer="c_gx", starts="2026-10-01 00:00", ends="2026-10-08 00:00")
    huge = bonus_msg("g-huge", multiplier="500", **window)  # a typo for 5.00: 50,000 points for 100.00
    shrink = bonus_msg("g-shrink", multiplier="0.5", **window)  # a "bonus" that takes points away
    backwards = bonus_msg("g-back", multiplier="2", campaign="camp-y", customer="c_gx", starts="2026-10-08 00:00",
                          ends="2026-10-01 00:00")
    outcome = messages.consume([buy, huge, shrink, backwards], deps=deps)
    assert (outcome.processed, outcome.dead_lettered) == (1, 3)
    assert check_invariants(store, ["c_gx"]) == {"c_gx": 100}
    letters = store.dead_letters()
    assert {d.code for d in letters} == {"invalid_grant"}
    assert sorted(d.reason for d in letters) == [
        "multiplier: a campaign bonus multiplier is between 1 and 100",
        "multiplier: a campaign bonus multiplier is between 1 and 100",
        "window: ends_at must be after starts_at"]


def test_a_batch_that_changes_nobody_publishes_nothing_and_reads_no_account(store, monkeypatch):
    # Redelivered purchases and a page view's membership already known: no customer to settle, so none of a
    # settle's reads (a dozen statements a batch at small batches, issue 13) and nothing published.
    deps = deps_for(store, Clock("2026-11-01 12:00"))
    msgs = [purchase_msg("nb-1", "20.00", "2026-10-01 10:00", record="c_nb"),
            purchase_msg("nb-2", "30.00", "2026-10-02 10:00", record="c_nb")]
    messages.consume(msgs, deps=deps)
    balance = store.account("c_nb").balance
    reads: list[str] = []
    for name in ("records_of_many", "checkpoints_of", "accounts_of", "balances_of", "posted_many"):
        monkeypatch.setattr(store, name, lambda *a, _name=name, _f=getattr(store, name), **k: (reads.append(_name),
                                                                                              _f(*a, **k))[1])
    again = messages.consume(msgs, deps=deps)
    assert (again.processed, again.duplicates, again.outbox, reads) == (0, 2, [], [])
    assert store.account("c_nb").balance == balance == 50


def test_a_batch_of_mixed_kinds_settles_each_customer_once_and_counts_what_loyalty_ignores(store):
    # messages.py hands consecutive kinds of one handler to it as one list; a kind loyalty ignores (a
    # campaign's touch on the campaigns topic) between them must not split the batch into two settles.
    deps = deps_for(store, Clock("2026-11-01 12:00"))
    touch = incoming(CampaignTouched(touch_id="t_1", campaign_id="cp_1", customer_id="c_mx1", channel="sms",
                                     at=at("2026-10-01 10:30")), "crm.campaigns.events")
    outcome = messages.consume([purchase_msg("mx-1", "100.00", "2026-10-01 10:00", record="c_mx1"), touch,
                                merge_msg("c_mx1", "c_mx2", ["c_mx2"], "2026-10-01 11:00", merge_id="m_mx"),
                                purchase_msg("mx-2", "50.00", "2026-10-01 12:00", record="c_mx2", customer="c_mx1")],
                               deps=deps)
    assert (outcome.processed, outcome.duplicates, outcome.counts["ignored"]) == (3, 0, 1)
    parts = [decode(m.value) for m in outcome.outbox if decode(m.value).kind == "view.part"]
    assert [(p.customer_id, p.value["points_balance"]) for p in parts] == [("c_mx1", 150)]
