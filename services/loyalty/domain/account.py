"""A customer's account derived from the facts: what every derived ledger bucket must add up to.

The ledger is the truth and stays append-only: the handler compares these targets with what the
ledger holds per bucket and posts the differences as correcting entries. Because the targets are a
pure function of the facts (and of ``now`` for expiry and reviews), the account ends the same
whatever order the facts arrived in, and recomputing it again changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.loyalty.domain.checkpoint import Checkpoint
from services.loyalty.domain.earning import rate_all
from services.loyalty.domain.lots import Credit, Debit, Replay, Restore, replay
from services.loyalty.domain.model import Facts, Target
from services.loyalty.domain.rules import RuleBook
from services.loyalty.domain.tiers import Timeline, next_review, timeline
from shared.clock import parse_iso

DEBT_REASON = "points a refund took back after they were spent; repaid from later earnings"


@dataclass
class Settlement:
    """The account as the facts say at ``now``."""

    targets: dict[tuple[str, str], Target]
    timeline: Timeline
    lots: Replay
    balance: int
    expiring: list[tuple[datetime, int]] = field(default_factory=list)
    announce: list[tuple[datetime, int]] = field(default_factory=list)
    next_due: datetime | None = None
    # Settled from a checkpoint: the buckets whose ledger entries these targets speak for (the rest were
    # settled for good before the checkpoint's horizon). None: every bucket.
    scope: set[str] | None = None
    snapshot: Checkpoint | None = None  # the account at the horizon asked for

    @property
    def tier(self) -> str | None:
        return self.timeline.tier

    @property
    def debt(self) -> int:
        return self.lots.debt


def movements_for_replay(facts: Facts) -> tuple[list[Credit], list[Debit], list[Restore]]:
    """Redemptions, cancellations and adjustments as lot movements."""
    credits, debits, restores = [], [], []
    for e in facts.movements:
        at = parse_iso(e.effective_at)
        if e.rule == "cancel":
            restores.append(Restore(e.bucket, e.bucket, e.record_id, at))
        elif e.points > 0:
            credits.append(Credit(e.bucket, e.record_id, at, e.points))
        elif e.points < 0:
            debits.append(Debit(e.bucket, at, -e.points))
    return credits, debits, restores


def settle(facts: Facts, book: RuleBook, *, customer_id: str, now: datetime, start: Checkpoint | None = None,
           snapshot_at: datetime | None = None) -> Settlement:
    """Targets, tier, lots and what falls due, for one customer from its facts.

    From ``start`` (the account at a horizon), ``facts`` are the purchases from the horizon on (with their
    refunds) and the movements dated from it on; with ``snapshot_at`` (not after ``now``: a month start, or
    where this settle's facts end), the account there is kept in ``snapshot`` for the next settle to start from.
    """
    if start is None and snapshot_at is None and not (facts.purchases or facts.refunds or facts.bonuses
                                                      or facts.movements or facts.holds or facts.tier_imports):
        # A member with no fact yet (issue 14: each imported member's first settle) holds nothing, no tier and
        # nothing due: what the full derivation below answers for no facts, without its bookkeeping.
        return Settlement({}, Timeline(), Replay(), 0)
    line = timeline(facts.purchases, facts.refunds, book, now=now, order_owner=facts.order_owner,
                    start=start.tiers if start else None, snapshot_at=snapshot_at, holds=facts.holds,
                    imports=facts.tier_imports)
    rated, used = rate_all(facts.purchases, facts.refunds, facts.bonuses, book,
                           lambda p: line.tier_before.get(p.bucket), facts.order_owner,
                           used=start.used if start else None, snapshot_at=snapshot_at)
    targets: dict[tuple[str, str], Target] = {}
    for r in rated:
        for t in r.targets:
            targets[(t.bucket, t.rule)] = t
    credits, debits, restores = movements_for_replay(facts)
    credits += [Credit(r.purchase.bucket, r.purchase.record_id, r.purchase.time, r.net) for r in rated]
    lots = replay(credits, debits, restores, now=now, expires=book.expires_at, start=start.lots if start else None,
                  snapshot_at=snapshot_at)
    for lot in lots.lots:
        if lot.expired:
            targets[(f"x:{lot.lot_id}", "expiry")] = Target(
                lot.record_id, f"x:{lot.lot_id}", "expiry", -lot.expired, lot.expires_at or now,
                {"lot": lot.lot_id, "earned_at": lot.earned_at.isoformat(),
                 "expires_at": lot.expires_at.isoformat() if lot.expires_at else None})
    if lots.debt:
        targets[(f"d:{customer_id}", "debt")] = Target(customer_id, f"d:{customer_id}", "debt", lots.debt, now,
                                                       {"reason": DEBT_REASON})
    out = Settlement(targets, line, lots, lots.held())
    if start is not None:
        # A lot can only have expiry entries once its moment has come: later ones need no look-up. A purchase or
        # movement since the horizon that makes no lot any more (a refund took all its points) may still have
        # the expiry entries of the lot it made before: its expiry bucket is spoken for too.
        out.scope = ({p.bucket for p in facts.purchases} | {b for b, _ in targets} | {f"d:{customer_id}"}
                     | {f"x:{p.bucket}" for p in facts.purchases} | {f"x:{m.bucket}" for m in facts.movements}
                     # (a lot is expired after the replay exactly when its moment is not after ``now``)
                     | {f"x:{lot.lot_id}" for lot in lots.lots if lot.is_expired})
    if snapshot_at is not None:
        before = sum(1 for m in facts.movements if parse_iso(m.effective_at) < snapshot_at)
        out.snapshot = Checkpoint(snapshot_at, line.snapshot, used, lots.snapshot,  # type: ignore[arg-type]
                                  (start.movements_before if start else 0) + before)
    groups: dict[datetime, int] = defaultdict(int)
    for lot in lots.open_lots():
        if lot.expires_at is not None:
            groups[lot.expires_at] += lot.remaining
    out.expiring = sorted(groups.items())
    notice = timedelta(days=book.at(now).expiry.notice_days)
    due = [at for at, _ in out.expiring]
    for at, points in out.expiring:
        if at - notice <= now:
            out.announce.append((at, points))
        else:
            due.append(at - notice)
    if line.tier is not None:
        due.append(next_review(book, now))
    out.next_due = min(due) if due else None
    return out
