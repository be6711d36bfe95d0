"""Settling from a checkpoint gives exactly what settling from every fact gives, on random histories."""

from __future__ import annotations

import random

from services.loyalty.domain import checkpoint
from services.loyalty.domain.account import settle
from services.loyalty.domain.model import Line
from tests.unit.loyalty.helpers import SH, bonus, book, facts, movement, purchase, refund, t

RULES = book({"earning": {"caps": {"year": 16000, "month": 2500, "day": 900},
                          "tiers": {"A": "2", "B": "1.5", "C": "1.2"}, "categories": {"skincare": "2"}},
              "expiry": {"mode": "days", "days": 75, "notice_days": 20}})


def _when(rng: random.Random, first: int, last: int) -> str:
    return f"2026-{rng.randrange(first, last + 1):02d}-{rng.randrange(1, 29):02d} {rng.randrange(9, 22):02d}:30"


def _history(seed: int):
    """Purchases over 2026, refunds dated anywhere (some before their purchase), bonuses, redemptions,
    cancellations and adjustments; a heavy spender at times, so tiers rise and fall."""
    rng = random.Random(seed)
    ps = []
    for i in range(rng.randrange(30, 90)):
        amount = f"{rng.choice([rng.randrange(100, 9000), rng.randrange(50000, 250000)]) / 100:.2f}"
        lines = (Line("SK-1", rng.choice(["skincare", "makeup"]), 1, None),)
        ps.append(purchase(f"o{i}", amount, _when(rng, 1, 12), lines=lines,
                           order="o0" if i == 7 else None))  # a second purchase under an order id
    rs = [refund(f"r{i}", rng.choice(ps).order_id, f"{rng.randrange(1, 60000) / 100:.2f}", _when(rng, 1, 12))
          for i in range(rng.randrange(5, 25))]
    bs = [bonus(f"g{i}", f"camp{i % 2}", rng.choice(["2", "3"]), f"2026-{m:02d}-01 00:00", f"2026-{m:02d}-20 00:00")
          for i, m in enumerate(rng.sample(range(1, 12), 3))]
    moves = []
    for i in range(rng.randrange(3, 10)):
        spent = movement(f"r:rd{i}", "redemption", -rng.choice([rng.randrange(50, 900), 9000]), _when(rng, 2, 11))
        moves.append(spent)
        if rng.random() < 0.4:
            moves.append(movement(f"r:rd{i}", "cancel", -spent.points,
                                  f"2026-{min(12, int(spent.effective_at[5:7]) + rng.randrange(0, 3)):02d}-28 23:00"))
    moves += [movement(f"a:{i}", "manual", rng.choice([-40, 30, 200]), _when(rng, 1, 12)) for i in range(3)]
    return ps, rs, bs, moves


def _split(ps, rs, bs, moves, horizon):
    """What a settle from the checkpoint at ``horizon`` reads: purchases from it on, their refunds, every
    bonus, the movements dated from it on."""
    post = [p for p in ps if p.time >= horizon]
    orders = {p.order_id for p in post}
    since = [m for m in moves if checkpoint._d(m.effective_at.replace("Z", "+00:00")) >= horizon]
    f = facts(post, [r for r in rs if r.order_id in orders], bs, since)
    f.order_owner.clear()
    f.order_owner.update(facts(ps).order_owner)  # owners are looked up among every purchase, as the store does
    return f


def _same(resumed, full, label):
    assert (resumed.balance, resumed.debt, resumed.tier) == (full.balance, full.debt, full.tier), label
    assert (resumed.expiring, resumed.announce, resumed.next_due) == (full.expiring, full.announce, full.next_due)
    assert resumed.timeline.changes[-1:] == full.timeline.changes[-1:], label
    assert resumed.timeline.window == full.timeline.window, label
    in_scope = {k: v for k, v in full.targets.items() if k[0] in resumed.scope}
    assert resumed.targets == in_scope, label


def test_a_settle_from_a_checkpoint_equals_a_settle_from_every_fact():
    for seed in range(40):
        ps, rs, bs, moves = _history(seed)
        everything = facts(ps, rs, bs, moves)
        first, second = t("2026-06-01 00:00"), t("2026-09-01 00:00")
        # The checkpoint is taken by a settle in July that knew every fact before its horizon.
        july = t("2026-07-15 12:00")
        # (A refund of an order bought before the horizon, arriving later, would be a change before it.)
        bought = {p.bucket: p.time for p in ps}
        owner = facts(ps).order_owner
        known = facts([p for p in ps if p.time < july],
                      [r for r in rs if r.time < july or bought[owner[r.order_id]] < first], bs,
                      [m for m in moves if m.effective_at < "2026-07-15"])
        made = settle(known, RULES, customer_id="c_a", now=july, snapshot_at=first)
        cp = checkpoint.load(checkpoint.dump(made.snapshot))  # through the store's text form
        assert cp == made.snapshot
        now = t("2026-12-31 12:00")
        full = settle(everything, RULES, customer_id="c_a", now=now)
        resumed = settle(_split(ps, rs, bs, moves, first), RULES, customer_id="c_a", now=now, start=cp,
                         snapshot_at=second)
        _same(resumed, full, seed)
        # What the checkpoint left out of scope was settled for good by the settle that took it.
        out_of_scope = {k: v for k, v in full.targets.items() if k[0] not in resumed.scope}
        assert out_of_scope == {k: v for k, v in made.targets.items() if k[0] not in resumed.scope}, seed
        # And a checkpoint taken from a checkpoint is as good.
        again = settle(_split(ps, rs, bs, moves, second), RULES, customer_id="c_a", now=now,
                       start=checkpoint.load(checkpoint.dump(resumed.snapshot)))
        _same(again, full, seed)


def test_a_checkpoint_is_used_only_while_nothing_before_its_horizon_changed():
    ps, rs, bs, moves = _history(1)
    at = t("2026-06-01 00:00")
    cp = settle(facts(ps, rs, bs, moves), RULES, customer_id="c_a", now=t("2026-07-01"), snapshot_at=at).snapshot
    from dataclasses import replace

    cp = replace(cp, records=("c_a",), book=RULES.fingerprint)
    now = t("2026-08-01 00:00")
    assert cp.usable(records=["c_a"], book=RULES.fingerprint, now=now, changed_from=None)
    assert cp.usable(records=["c_a"], book=RULES.fingerprint, now=now, changed_from=at)
    assert not cp.usable(records=["c_a"], book=RULES.fingerprint, now=now, changed_from=t("2026-05-31 23:59"))
    assert not cp.usable(records=["c_a", "c_b"], book=RULES.fingerprint, now=now, changed_from=None)  # a merge
    assert not cp.usable(records=["c_a"], book=book().fingerprint, now=now, changed_from=None)  # other rules
    assert not cp.usable(records=["c_a"], book=RULES.fingerprint, now=t("2026-05-01"), changed_from=None)
    assert checkpoint.horizon(t("2026-08-31 23:59"), SH, 2) == t("2026-06-01 00:00")
    assert checkpoint.horizon(t("2027-01-01 00:00"), SH, 2) == t("2026-11-01 00:00")


def test_with_nothing_new_since_the_horizon_reviews_and_expiry_still_come_from_the_checkpoint():
    # A member who reached A in the spring and stopped buying: from the June checkpoint alone, the reviews
    # step the tier down month by month and the lots expire, as a settle from every fact says.
    ps = [purchase(f"s{m}-{d}", "1800.00", f"2026-{m:02d}-{d:02d} 12:00") for m in (3, 4, 5) for d in range(1, 8)]
    ps.append(purchase("late-may", "60.00", "2026-05-31 23:30"))
    moves = [movement("r:rd1", "redemption", -4000, "2026-05-20 10:00")]
    at = t("2026-06-01 00:00")
    made = settle(facts(ps, movements=moves), RULES, customer_id="c_a", now=t("2026-06-10"), snapshot_at=at)
    cp = checkpoint.load(checkpoint.dump(made.snapshot))
    assert made.tier == "A" and cp.lots.consumed  # the redemption's lots travel with the checkpoint
    for now in ("2026-07-01 00:00", "2026-08-15 00:00", "2026-09-01 00:00", "2026-12-31 00:00"):
        resumed = settle(facts([]), RULES, customer_id="c_a", now=t(now), start=cp)
        full = settle(facts(ps, movements=moves), RULES, customer_id="c_a", now=t(now))
        _same(resumed, full, now)
    assert [c.tier for c in full.timeline.changes] == ["C", "B", "A", "B", "C", None]


def test_a_member_without_purchases_gets_a_checkpoint_too():
    # A WeChat follower bound to a phone, a grant, a merge: settled before any purchase (before: the
    # checkpoint had no tier state and the settle failed, dead-lettering every message about the member).
    made = settle(facts([]), RULES, customer_id="c_a", now=t("2026-07-10"), snapshot_at=t("2026-06-01 00:00"))
    cp = checkpoint.load(checkpoint.dump(made.snapshot))
    later = purchase("first", "100.00", "2026-07-11 10:00")
    resumed = settle(facts([later]), RULES, customer_id="c_a", now=t("2026-07-12"), start=cp)
    _same(resumed, settle(facts([later]), RULES, customer_id="c_a", now=t("2026-07-12")), "first purchase")
    assert resumed.balance == 100
