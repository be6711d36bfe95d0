"""Points held in lots, replayed in event-time order: earning, spending oldest first, expiry, debt.

* A credit (a purchase's points after caps and refunds, a positive adjustment) makes a lot that
  expires by the policy in effect when it was earned; it first repays any debt.
* A debit (a redemption, a negative adjustment) consumes the oldest unexpired lots first. What no lot
  covers any more (the facts changed after the redemption: a refund took back points already spent)
  becomes debt, which later credits repay. So the balance, the sum of what the lots hold, is never
  negative.
* A lot's expiry takes what is left in it at its moment; only moments up to ``now`` have happened.
* A cancelled redemption gives its points back to the lots they came from; the part whose lots have
  expired since (and any part that was debt) comes back as a new lot, dated at the cancellation.

A replay can stop at a horizon and say what it holds there (:class:`LotState`: the lots later
movements can still touch, the debt, what each redemption took), and a later replay can start from
that state with only the movements from the horizon on.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

EXPIRE, CREDIT, DEBIT, RESTORE = 0, 1, 2, 3  # order of events at the same moment


@dataclass
class Lot:
    """Points earned together that expire together."""

    lot_id: str
    record_id: str
    earned_at: datetime
    expires_at: datetime | None
    points: int
    remaining: int = 0
    expired: int = 0
    is_expired: bool = False

    def copy(self) -> Lot:
        """An independent copy (cheaper than ``dataclasses.replace``: checkpoints copy every open lot)."""
        return Lot(self.lot_id, self.record_id, self.earned_at, self.expires_at, self.points, self.remaining,
                   self.expired, self.is_expired)


@dataclass(frozen=True)
class Credit:
    lot_id: str
    record_id: str
    at: datetime
    points: int


@dataclass(frozen=True)
class Debit:
    ref: str
    at: datetime
    points: int


@dataclass(frozen=True)
class Restore:
    ref: str  # the debit it gives back
    lot_id: str  # the lot it makes for whatever cannot go back
    record_id: str
    at: datetime


@dataclass(frozen=True)
class LotState:
    """The lots at a horizon, as far as anything from the horizon on can touch them."""

    lots: list[Lot]  # lots with points left, and lots a redemption that may be cancelled took from
    debt: int
    consumed: dict[str, list[tuple[str, int]]]  # redemption ref -> (lot id, points) it took
    shortfall: dict[str, int]  # redemption ref -> points no lot covered (debt)

    @cached_property
    def next_expiry(self) -> datetime | None:
        """The first moment one of these lots expires (a state is read by many replays: found once)."""
        return min((lot.expires_at for lot in self.lots if not lot.is_expired and lot.expires_at is not None),
                   default=None)


@dataclass
class Replay:
    """The lots as they stand at ``now``, what expired, and the debt left."""

    lots: list[Lot] = field(default_factory=list)
    debt: int = 0
    snapshot: LotState | None = None  # the state at the horizon asked for

    def held(self) -> int:
        """Points the member holds: what unexpired lots still have."""
        return sum(lot.remaining for lot in self.lots if not lot.is_expired)

    def open_lots(self) -> list[Lot]:
        """Lots with points left, oldest first."""
        return [lot for lot in self.lots if lot.remaining > 0 and not lot.is_expired]


def replay(credits: list[Credit], debits: list[Debit], restores: list[Restore], *, now: datetime,
           expires: Callable[[datetime], datetime | None], start: LotState | None = None,
           snapshot_at: datetime | None = None) -> Replay:
    """Replay the account's movements up to ``now`` (credits dated later still count: they exist), from
    ``start`` (the state at a horizon; the movements are then those from the horizon on) if given; with
    ``snapshot_at``, the state there is kept in ``snapshot``."""
    if start is None and snapshot_at is None and not debits and not restores:
        return _credited(credits, now=now, expires=expires)
    out = Replay()
    heap: list[tuple] = []
    seq = 0

    def push(at: datetime, order: int, key: str, item: object) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (at, order, key, seq, item))

    by_id: dict[str, Lot] = {}
    consumed: dict[str, list[tuple[Lot, int]]] = {}
    shortfall: dict[str, int] = {}
    if start is not None:
        out.debt = start.debt
        # Only a lot this replay can change is copied (one whose expiry has come; every one if anything spends or
        # gives back): a long-tenure member's thousands of untouched lots are shared with the start, read-only.
        moves = bool(debits or restores)
        if not moves and (start.next_expiry is None or start.next_expiry > now):
            out.lots.extend(start.lots)  # nothing here can change any of them
            wanted = {lot_id for took in start.consumed.values() for lot_id, _ in took}
            if wanted:
                by_id.update((lot.lot_id, lot) for lot in start.lots if lot.lot_id in wanted)
        else:
            for held in start.lots:
                due = not held.is_expired and held.expires_at is not None and held.expires_at <= now
                lot = held.copy() if due or moves else held
                out.lots.append(lot)
                by_id[lot.lot_id] = lot
                if due:
                    push(lot.expires_at, EXPIRE, lot.lot_id, lot)
        consumed = {ref: [(by_id[lot_id], n) for lot_id, n in took] for ref, took in start.consumed.items()}
        shortfall = dict(start.shortfall)
    for c in credits:
        push(c.at, CREDIT, c.lot_id, c)
    for d in debits:
        push(d.at, DEBIT, d.ref, d)
    for r in restores:
        push(r.at, RESTORE, r.ref, r)

    def credit(lot_id: str, record_id: str, at: datetime, points: int) -> None:
        if points <= 0:
            return
        repay = min(out.debt, points)
        out.debt -= repay
        lot = Lot(lot_id, record_id, at, expires(at), points, points - repay)
        out.lots.append(lot)
        by_id[lot_id] = lot
        if lot.expires_at is not None and lot.expires_at <= now:
            push(lot.expires_at, EXPIRE, lot_id, lot)

    while heap:
        if snapshot_at is not None and out.snapshot is None and heap[0][0] >= snapshot_at:
            out.snapshot = _state(out, consumed, shortfall)
        at, order, _, _, item = heapq.heappop(heap)
        if order == EXPIRE:
            lot: Lot = item  # type: ignore[assignment]
            lot.expired, lot.remaining, lot.is_expired = lot.remaining, 0, True
        elif order == CREDIT:
            c: Credit = item  # type: ignore[assignment]
            credit(c.lot_id, c.record_id, c.at, c.points)
        elif order == DEBIT:
            d: Debit = item  # type: ignore[assignment]
            need, took = d.points, []
            for lot in sorted((x for x in out.lots if x.remaining > 0 and not x.is_expired),
                              key=lambda x: (x.earned_at, x.lot_id)):
                take = min(lot.remaining, need)
                lot.remaining -= take
                need -= take
                took.append((lot, take))
                if need == 0:
                    break
            consumed[d.ref] = took
            shortfall[d.ref] = need
            out.debt += need
        else:
            r: Restore = item  # type: ignore[assignment]
            took = consumed.pop(r.ref, [])
            fresh = shortfall.pop(r.ref, 0)
            if out.debt > 0:
                fresh += sum(n for _, n in took)
            else:
                for lot, n in took:
                    if lot.is_expired:
                        fresh += n
                    else:
                        lot.remaining += n
            credit(r.lot_id, r.record_id, r.at, fresh)
    if snapshot_at is not None and out.snapshot is None:
        out.snapshot = _state(out, consumed, shortfall)
    return out


def _credited(credits: list[Credit], *, now: datetime, expires: Callable[[datetime], datetime | None]) -> Replay:
    # What the replay above ends with when nothing spends or gives back (every imported member's opening lots, a
    # member who only bought): no debt ever, so each lot holds all its points until its expiry, if that has come,
    # takes them all; lots in the order the replay makes them (by moment, then id).
    out = Replay()
    for c in sorted(credits, key=lambda c: (c.at, c.lot_id)):
        if c.points > 0:
            at = expires(c.at)
            lot = Lot(c.lot_id, c.record_id, c.at, at, c.points, c.points)
            if at is not None and at <= now:
                lot.expired, lot.remaining, lot.is_expired = c.points, 0, True
            out.lots.append(lot)
    return out


def _state(out: Replay, consumed: dict[str, list[tuple[Lot, int]]], shortfall: dict[str, int]) -> LotState:
    # Copies: the replay goes on changing its lots after the horizon.
    wanted = {lot.lot_id for took in consumed.values() for lot, _ in took}
    lots = [lot.copy() for lot in out.lots if lot.lot_id in wanted or (lot.remaining > 0 and not lot.is_expired)]
    return LotState(lots, out.debt, {ref: [(lot.lot_id, n) for lot, n in took] for ref, took in consumed.items()},
                    dict(shortfall))
