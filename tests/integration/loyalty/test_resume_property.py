"""Settling from where the last settle stopped (issue 13) is exact: a property over random histories.

Two stores see the same steps: one settles from its checkpoints (monthly, and the latest one every few
purchases), the other replays every fact each time. Purchases come in time order or late (minutes, days, months
before the latest), refunds of recent and old orders, redemptions and adjustments, a merge, the clock crossing
expiry moments, notices and tier reviews, each step's messages cut into batches anywhere. After every step both
hold the same ledger, balances, tiers and views, and every batch, schedule run and command published the same.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.loyalty import messages
from services.loyalty.handlers import commands, timers
from shared.contract.messages import decode
from shared.http.errors import Conflict, NotFound
from tests.integration.loyalty.conftest import SH, Clock, _sqlite, deps_for, merge_msg, purchase_msg, refund_msg

RULES = {"versions": [
    {"earning": {"caps": {"day": 900}, "tiers": {"A": "2", "B": "1.5"}, "categories": {"skincare": "2"}},
     "expiry": {"mode": "days", "days": 20, "notice_days": 4},
     "tiers": {"window_months": 1, "grace_months": 0,
               "levels": [{"name": "A", "visits": 4, "spend": "900"}, {"name": "B", "visits": 2, "spend": "200"}]}},
    {"effective_from": "2026-04-01T00:00:00+08:00",
     "earning": {"points_per_unit": "2", "caps": {"day": 1500, "month": 5000}},
     "expiry": {"mode": "month_end", "months": 1, "notice_days": 6}},
]}
RECORDS = ["c_h0", "c_h1"]

buy = st.tuples(st.just("buy"), st.integers(0, 1),
                st.one_of(st.just(0), st.integers(0, 180), st.integers(0, 60 * 24 * 3), st.integers(0, 60 * 24 * 80)),
                st.integers(100, 90000), st.sampled_from(["skincare", None]))
refund = st.tuples(st.just("refund"), st.integers(0, 10**6), st.integers(100, 60000), st.booleans())
redeem = st.tuples(st.just("redeem"), st.integers(0, 1), st.integers(1, 2))
adjust = st.tuples(st.just("adjust"), st.integers(0, 1), st.sampled_from([-120, -30, 25, 400]))
merge = st.just(("merge",))
step = st.tuples(st.integers(1, 60 * 24 * 25),  # minutes the clock moves on: across expiries, notices, reviews
                 st.lists(st.one_of(buy, buy, buy, refund, redeem, adjust, merge), max_size=7),
                 st.lists(st.integers(0, 7), max_size=3))  # where the step's messages are cut into batches


@contextmanager
def twin_stores(every: int) -> Iterator[tuple[Clock, object, object, list[str]]]:
    """A checkpointing store (the latest checkpoint every ``every`` purchases) and a replaying one, on one clock,
    each with the same reward."""
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules.json"
        rules.write_text(json.dumps(RULES))
        clock = Clock("2026-02-10 10:00")
        resumed = deps_for(_sqlite(Path(tmp) / "cp"), clock, rules_file=str(rules), checkpoint_lag_months=1,
                           checkpoint_min_purchases=0, checkpoint_recent_purchases=every)
        replayed = deps_for(_sqlite(Path(tmp) / "plain"), clock, rules_file=str(rules), checkpoint_lag_months=0)
        fields = dict(name="Mug", points_cost=150, stock=10**6, per_member_limit=None, valid_from=None,
                      valid_until=None, active=True, description="")
        yield clock, resumed, replayed, [commands.create_reward(fields, deps=d).reward_id for d in (resumed, replayed)]


def _stamp(moment) -> str:
    return moment.astimezone(SH).strftime("%Y-%m-%d %H:%M")


def _published(outbox) -> list:
    # Entry numbers and view versions count steps, not state: compared without them (as the oracle does).
    out = []
    for m in (decode(x.value) for x in outbox):
        if hasattr(m, "version"):
            m = m.model_copy(update={"version": ""})
        if hasattr(m, "entry_id"):
            m = m.model_copy(update={"entry_id": m.entry_id.rsplit("|", 1)[0]})
        out.append(m)
    return out


def _state(deps, customers: list[str]) -> tuple:
    store = deps.store
    accounts = {c: (r.balance, r.debt, r.tier, r.view, r.next_due_ms) if (r := store.account(c)) else None
                for c in customers}
    sums: dict = {}
    for e in store.entries(RECORDS, before=None, limit=10**6):
        key = (e.record_id, e.bucket, e.rule, e.kind)
        sums[key] = sums.get(key, 0) + e.points
    return accounts, {k: v for k, v in sums.items() if v}, store.balances_of(RECORDS)


def _command(op: tuple, owner: dict, deps, reward: str, key: str):
    try:
        if op[0] == "redeem":
            a = commands.redeem(owner[RECORDS[op[1]]], reward_id=reward, quantity=op[2], key=key, by="key_t",
                                deps=deps)
        else:
            a = commands.adjust(owner[RECORDS[op[1]]], points=op[2], reason="goodwill", key=key, by="key_t",
                                deps=deps)
        return "ok", {k: v for k, v in a.body.items() if k != "reward_id"}, _published(a.outbox or [])
    except (Conflict, NotFound) as exc:  # not enough points; a member loyalty has not heard of yet
        return type(exc).__name__, exc.code


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=8), st.sampled_from([1, 2, 4]))
def test_settling_from_the_latest_checkpoint_equals_replaying_every_fact(steps, every):
    with twin_stores(every) as (clock, resumed, replayed, rewards):
        owner = {r: r for r in RECORDS}
        orders: list[tuple[str, str]] = []  # order id, record
        latest = clock.now
        n = 0
        for minutes, ops, cuts in steps:
            clock.now += timedelta(minutes=minutes)
            batch, later = [], []
            for op in ops:
                n += 1
                if op[0] == "buy":
                    record = RECORDS[op[1]]
                    when = min(max(latest, clock.now - timedelta(minutes=op[2])), clock.now) if op[2] == 0 \
                        else clock.now - timedelta(minutes=op[2])
                    latest = max(latest, when)
                    eid = f"h{n}"
                    batch.append(purchase_msg(eid, f"{op[3] / 100:.2f}", _stamp(when), record=record,
                                              customer=owner[record], category=op[4]))
                    orders.append((eid, record))
                elif op[0] == "refund" and orders:
                    order, record = orders[op[1] % len(orders)]
                    batch.append(refund_msg(f"r{n}", order, f"{op[2] / 100:.2f}", _stamp(clock.now), record=record,
                                            customer=owner[record]))
                elif op[0] == "merge" and owner[RECORDS[1]] != RECORDS[0]:
                    owner[RECORDS[1]] = RECORDS[0]
                    batch.append(merge_msg(RECORDS[0], RECORDS[1], RECORDS, _stamp(clock.now), merge_id=f"m{n}"))
                elif op[0] in ("redeem", "adjust"):
                    later.append((op, f"k{n}"))
            bounds = sorted({0, len(batch), *(c for c in cuts if c <= len(batch))})
            results = []
            for deps, reward in zip((resumed, replayed), rewards, strict=True):
                said = []
                for lo, hi in zip(bounds, bounds[1:], strict=False):
                    o = messages.consume(batch[lo:hi], deps=deps)
                    said.append((o.processed, o.duplicates, o.dead_lettered, _published(o.outbox)))
                said.append(_published(timers.run_due(deps=deps).outbox))
                said += [_command(op, owner, deps, reward, key) for op, key in later]
                results.append(said)
            label = f"at {clock.now.isoformat()}"
            assert results[0] == results[1], label
            customers = sorted(set(owner.values()))
            assert _state(resumed, customers) == _state(replayed, customers), label
