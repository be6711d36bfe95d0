"""The oracle for checkpoints: random histories (seeded) fed step by step to a store that settles from
checkpoints and to one that never keeps any; after every step both must hold the same accounts, ledgers,
statements and published messages. Histories mix late facts (dated before the checkpoint), refunds of old
orders, merges and unmerges, campaign grants that reach back, caps, two rule versions, redemptions,
cancellations, adjustments and the schedule, with the clock crossing months and a year end."""

from __future__ import annotations

import json
import os
import random
from datetime import timedelta

import pytest

from services.loyalty import messages
from services.loyalty.handlers import commands, queries, timers
from shared.contract.messages import decode
from shared.http.errors import Conflict
from tests.integration.loyalty.conftest import (
    Clock,
    _sqlite,
    at,
    bonus_msg,
    deps_for,
    merge_msg,
    purchase_msg,
    refund_msg,
)
from tests.integration.loyalty.invariants import check_invariants

RULES = {"versions": [
    {"earning": {"caps": {"day": 1500, "month": 6000, "year": 30000}, "tiers": {"A": "2", "B": "1.5", "C": "1.2"},
                 "categories": {"skincare": "2"}},
     "expiry": {"mode": "days", "days": 90, "notice_days": 20},
     "tiers": {"window_months": 2, "grace_months": 1,
               "levels": [{"name": "A", "visits": 4, "spend": "3000"}, {"name": "B", "visits": 3, "spend": "1500"},
                          {"name": "C", "visits": 2, "spend": "500"}]}},
    {"effective_from": "2026-07-01T00:00:00+08:00",
     "earning": {"points_per_unit": "2", "caps": {"day": 2500, "month": 8000}, "tiers": {"A": "3", "C": "1.5"}},
     "expiry": {"mode": "month_end", "months": 2, "notice_days": 10},
     "tiers": {"window_months": 3, "grace_months": 0,
               "levels": [{"name": "A", "visits": 3, "spend": "2500"}, {"name": "C", "visits": 1, "spend": "400"}]}},
]}
LATER_VERSION = {"effective_from": "2026-09-01T00:00:00+08:00",
                 "expiry": {"mode": "days", "days": 45, "notice_days": 5}}


def _stamp(moment) -> str:
    return moment.astimezone(at("2026-01-01 00:00").tzinfo).strftime("%Y-%m-%d %H:%M")


class World:
    """Identity's side of a history: which record belongs to which customer, and what was bought."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.p = f"s{seed}"
        self.records = [f"c_{self.p}r{i}" for i in range(4)]
        self.owner = {r: r for r in self.records}
        self.merges: list[tuple[str, str, list[str], str]] = []  # survivor, merged, records given back, id
        self.orders: list[tuple[str, str, str]] = []  # order id, record, event time
        self.redemptions: list[str] = []
        self.n = 0

    def next_id(self, kind: str) -> str:
        self.n += 1
        return f"{self.p}-{kind}{self.n}"

    def active(self) -> list[str]:
        return sorted(set(self.owner.values()))


def _moment(w: World, now) -> str:
    # Identity stamps each merge and unmerge after everything it resolved before (the mapping is newest-wins).
    w.n += 1
    return (now + timedelta(seconds=w.n)).isoformat()


def _step_messages(w: World, now) -> list:
    rng, msgs = w.rng, []
    for _ in range(rng.randrange(1, 7)):
        roll = rng.random()
        if roll < 0.55 or not w.orders:
            record = rng.choice(w.records)
            back = rng.choice([0, 0, 0, rng.randrange(0, 40), rng.randrange(20, 150)])  # some late, some very late
            when = now - timedelta(days=back, hours=rng.randrange(0, 20), minutes=rng.randrange(0, 60))
            eid = w.next_id("p")
            order = eid if rng.random() > 0.05 or not w.orders else rng.choice(w.orders)[0]  # rarely, an order again
            amount = f"{rng.choice([rng.randrange(500, 40000), rng.randrange(80000, 300000)]) / 100:.2f}"
            msgs.append(purchase_msg(eid, amount, _stamp(when), record=record, customer=w.owner[record], order=order,
                                     category=rng.choice(["skincare", "makeup", None])))
            w.orders.append((order, record, _stamp(when)))
        elif roll < 0.75:
            order, record, bought = rng.choice(w.orders)
            late = rng.random() < 0.3
            when = at(bought) + timedelta(hours=rng.randrange(1, 500)) if late else now - timedelta(hours=1)
            when = min(when, now)
            amount = f"{rng.randrange(100, 90000) / 100:.2f}"
            msgs.append(refund_msg(w.next_id("r"), order, amount, _stamp(when), record=record,
                                   customer=w.owner[record]))
        elif roll < 0.85:
            customer = rng.choice(w.active())
            starts = now - timedelta(days=rng.randrange(0, 160))
            campaign = rng.choice(["camp1", "camp2"])
            # One grant per campaign and customer, as campaigns makes them: sent again, it replaces the window.
            msgs.append(bonus_msg(f"{w.p}-{campaign}-{customer}", campaign, customer, rng.choice(["2", "3"]),
                                  _stamp(starts), _stamp(starts + timedelta(days=rng.randrange(3, 40))),
                                  active=rng.random() > 0.15, when=_stamp(now)))
        elif roll < 0.93 and len(w.active()) > 1:
            survivor, merged = rng.sample(w.active(), 2)
            given = sorted(r for r in w.records if w.owner[r] == merged)
            for r in given:
                w.owner[r] = survivor
            mid = w.next_id("m")
            w.merges.append((survivor, merged, given, mid))
            msgs.append(merge_msg(survivor, merged, sorted(r for r in w.records if w.owner[r] == survivor),
                                  _moment(w, now), merge_id=mid))
        elif w.merges:
            survivor, merged, given, mid = w.merges.pop()
            for r in given:
                w.owner[r] = merged
            msgs.append(merge_msg(survivor, merged, given, _moment(w, now), undo=True, merge_id=mid))
    return msgs


def _snapshot(deps, w: World, months: list[str]) -> dict:
    store = deps.store
    out: dict = {"accounts": {}, "ledger": {}, "statements": {}}
    for c in w.active():  # a merged-away customer's row is history (the schedule clears what it had due)
        row = store.account(c)
        out["accounts"][c] = None if row is None else (row.balance, row.debt, row.tier, row.view, row.next_due_ms)
    # Per bucket and rule (a batch applied again one message at a time posts the same sums in more steps).
    sums: dict = {}
    for e in store.entries(w.records, before=None, limit=10**6):
        key = (e.record_id, e.bucket, e.rule, e.kind)
        sums[key] = sums.get(key, 0) + e.points
    out["ledger"] = {k: v for k, v in sums.items() if v}
    for c in w.active():
        if not store.known(c):
            continue
        for m in months:
            st = queries.monthly_statement(c, month=m, deps=deps)
            out["statements"][(c, m)] = st
    return out


def _published(messages) -> list:
    # View versions and entry numbers count what a store published and posted, which a batch applied again one
    # message at a time raises: compared without them.
    out = []
    for m in (decode(x.value) for x in messages):
        if hasattr(m, "version"):
            m = m.model_copy(update={"version": ""})
        if hasattr(m, "entry_id"):
            m = m.model_copy(update={"entry_id": m.entry_id.rsplit("|", 1)[0]})
        out.append(m)
    return out


def _apply_commands(w: World, deps, reward_id: str, step: int) -> list:
    """Redemptions, cancellations and adjustments, with keys so both stores make the same ids."""
    rng = random.Random(f"{w.p}:{step}")
    out: list = []
    for _ in range(rng.randrange(0, 3)):
        roll = rng.random()
        customer = rng.choice(w.records)
        try:
            if roll < 0.5:
                a = commands.redeem(customer, reward_id=reward_id, quantity=rng.randrange(1, 3),
                                    key=f"{w.p}-k{step}-{roll}", by="key_t", deps=deps)
                w.redemptions.append(a.body["redemption_id"])
            elif roll < 0.75 and w.redemptions:
                a = commands.cancel(rng.choice(w.redemptions), reason="changed mind", by="key_t", deps=deps)
            else:
                a = commands.adjust(customer, points=rng.choice([-300, -50, 40, 250]), reason="goodwill",
                                    key=f"{w.p}-a{step}-{roll}", by="key_t", deps=deps)
            out.append(("ok", {k: v for k, v in a.body.items() if k != "reward_id"}, _published(a.outbox or [])))
        except Conflict as exc:
            out.append(("conflict", exc.code))
        except Exception as exc:  # NotFound for a customer loyalty never heard of: the same in both
            out.append(("error", type(exc).__name__))
    return out


class Flaky:
    """A store whose ``put_account`` fails once when armed: the batch rolls back after its checkpoints were
    written, and is applied again message by message."""

    def __init__(self, store) -> None:
        self._store, self.armed = store, False

    def __getattr__(self, name):
        return getattr(self._store, name)

    def put_account(self, row) -> None:
        if self.armed:
            self.armed = False
            raise RuntimeError("the worker died here")
        self._store.put_account(row)


def _run(seed: int, tmp_path, steps: int = 28, store=None, transactional: bool = True) -> None:
    rules = tmp_path / f"rules{seed}.json"
    rules.write_text(json.dumps(RULES))
    clock = Clock("2026-01-20 10:00")
    cp_store = Flaky(store if store is not None else _sqlite(tmp_path / f"cp{seed}"))
    cp = deps_for(cp_store, clock, rules_file=str(rules), checkpoint_lag_months=1, checkpoint_min_purchases=0)
    plain = deps_for(_sqlite(tmp_path / f"plain{seed}"), clock, rules_file=str(rules), checkpoint_lag_months=0)
    fields = dict(name="Mug", points_cost=300, stock=10**6, per_member_limit=None, valid_from=None,
                  valid_until=None, active=True, description="")
    rewards = [commands.create_reward(fields, deps=d).reward_id for d in (cp, plain)]
    w = World(seed)
    rng = w.rng
    sent: list = []
    failing = False
    for step in range(steps):
        clock.now = clock.now + timedelta(days=rng.randrange(3, 25), hours=rng.randrange(0, 12))
        if step == steps // 2:
            rules.write_text(json.dumps({"versions": [*RULES["versions"], LATER_VERSION]}))
            os.utime(rules, ns=(step * 10**9, step * 10**9))  # a new mtime, whatever the clock's resolution
        msgs = _step_messages(w, clock.now)
        if sent and rng.random() < 0.2:
            msgs += rng.sample(sent, min(len(sent), 3))  # redelivered after a crash
        sent += msgs
        cut = rng.randrange(0, len(msgs) + 1)
        # Now and then the checkpoint store's first batch fails midway (its transaction rolls back, checkpoints
        # included, where the store has transactions) and is applied again one message at a time.
        cp_store.armed = rng.random() < 0.2 and transactional
        # From then on the stores may publish at other moments (an announcement made while a customer was
        # briefly unmerged, say): only states are compared.
        failing = failing or cp_store.armed
        results, before = [], list(w.redemptions)
        for d, reward in zip((cp, plain), rewards, strict=True):
            w.redemptions = list(before)  # both stores see the same commands
            pub = []
            for part in (msgs[:cut], msgs[cut:]):
                if part:
                    o = messages.consume(part, deps=d)
                    # Applied one message at a time after a failure, a batch publishes each message's settle (the same
                    # final state, more steps), so only its counts are compared then.
                    said = _published(o.outbox) if not failing else []
                    pub.append((o.processed, o.duplicates, o.dead_lettered, said))
            cp_store.armed = False
            due = _published(timers.run_due(deps=d).outbox)
            pub.append(due if not failing else [])
            pub.append([x[:2] if failing else x for x in _apply_commands(w, d, reward, step)])
            results.append(pub)
        label = f"seed {seed} step {step} at {clock.now.isoformat()}"
        assert results[0] == results[1], label
        months = sorted({_stamp(clock.now - timedelta(days=30 * k))[:7] for k in range(0, 6)})
        a, b = _snapshot(cp, w, months), _snapshot(plain, w, months)
        assert a["accounts"] == b["accounts"], label
        assert a["ledger"] == b["ledger"], label
        assert a["statements"] == b["statements"], label
        assert check_invariants(cp.store, w.records) == check_invariants(plain.store, w.records), label


@pytest.mark.parametrize("seed", range(6))
def test_checkpoints_settle_random_histories_exactly_as_the_whole_history(seed, tmp_path, caplog):
    _run(seed, tmp_path)
    # The clock only goes forward here: a checkpoint whose settle disagrees with the ledger (and falls back to
    # the whole history) is one that left a bucket out.
    assert not [r for r in caplog.records if "disagrees with its ledger" in r.getMessage()], seed


@pytest.mark.parametrize("backend", ["mongomock", "mongodb"])
def test_the_mongo_store_settles_from_checkpoints_exactly_too(backend, tmp_path, caplog):
    from services.loyalty.store.mongo import MongoLoyaltyStore
    from tests.integration.shared.backends import mongo_db

    with mongo_db(backend) as db:
        _run(100, tmp_path, steps=20, store=MongoLoyaltyStore(db), transactional=backend == "mongodb")
    assert not [r for r in caplog.records if "disagrees with its ledger" in r.getMessage()]
