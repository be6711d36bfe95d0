"""An account at a horizon, so a settle replays only what happened since instead of the whole history.

A settle is a pure function of a member's facts, and replaying every fact on every event makes each
event cost more the longer the member's history. A checkpoint holds what the three replays (tier
timeline, cap room, lots) had reached at a horizon, a month start some months back; the next settle
starts there with the facts from the horizon on. It is only valid while nothing before the horizon
changed: the same records and rule book, no movement dated before it that it has not counted, and no
new fact dated before it (the caller knows which facts a batch added); otherwise the account is
settled from all its facts, exactly as without a checkpoint, and a new checkpoint is taken.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from services.loyalty.domain.calendar import add_months, month_of, month_start
from services.loyalty.domain.earning import Used
from services.loyalty.domain.lots import Lot, LotState
from services.loyalty.domain.tiers import TierChange, TierState

VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    """What a member's account had reached at ``at``."""

    at: datetime
    tiers: TierState
    used: Used
    lots: LotState
    movements_before: int  # redemptions, cancellations and adjustments dated before ``at``
    records: tuple[str, ...] = ()
    book: str = ""  # the fingerprint of the rule book it was computed with

    def usable(self, *, records: list[str], book: str, now: datetime, changed_from: datetime | None) -> bool:
        """Whether a settle at ``now`` may start here, given the earliest moment its new facts touch."""
        return (tuple(records) == self.records and book == self.book and self.at <= now
                and (changed_from is None or changed_from >= self.at))


def horizon(now: datetime, zone, lag_months: int) -> datetime:
    """Where the next checkpoint goes: the start of the month ``lag_months`` before ``now``'s month."""
    return month_start(add_months(month_of(now, zone), -lag_months), zone)


def _t(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _d(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


def dump(cp: Checkpoint) -> str:
    """The checkpoint as JSON text (what the store keeps)."""
    t, lots = cp.tiers, cp.lots
    change = t.last_change
    return json.dumps({
        "v": VERSION, "at": _t(cp.at), "records": list(cp.records), "book": cp.book,
        "movements_before": cp.movements_before,
        "tiers": {"at": _t(t.at), "tier": t.tier, "failing_since": _t(t.failing_since),
                  "last_change": None if change is None else [_t(change.at), change.previous, change.tier,
                                                              change.direction, change.reason],
                  "days": t.days, "spend": t.spend,
                  "pending": [[_t(at), src, eid, month, n] for at, src, eid, month, n in t.pending]},
        "used": [[period, key, n] for (period, key), n in sorted(cp.used.items())],
        "lots": {"debt": lots.debt, "shortfall": lots.shortfall, "consumed": lots.consumed,
                 "lots": [[x.lot_id, x.record_id, _t(x.earned_at), _t(x.expires_at), x.points, x.remaining, x.expired,
                           x.is_expired] for x in lots.lots]},
    }, separators=(",", ":"))


def load(text: str) -> Checkpoint | None:
    """A checkpoint from its JSON text; None for one an older version of the service wrote."""
    d = json.loads(text)
    if d.get("v") != VERSION:
        return None
    t, lots = d["tiers"], d["lots"]
    change = t["last_change"]
    tiers = TierState(_d(t["at"]), t["tier"], _d(t["failing_since"]),  # type: ignore[arg-type]
                      None if change is None else TierChange(_d(change[0]), *change[1:]),  # type: ignore[arg-type]
                      t["days"], t["spend"], [(_d(at), src, eid, month, n) for at, src, eid, month, n in t["pending"]])
    lot_state = LotState([Lot(i, rec, _d(earned), _d(expires), pts, rem, exp, gone)  # type: ignore[arg-type]
                          for i, rec, earned, expires, pts, rem, exp, gone in lots["lots"]], lots["debt"],
                         {ref: [(lot_id, n) for lot_id, n in took] for ref, took in lots["consumed"].items()},
                         lots["shortfall"])
    return Checkpoint(_d(d["at"]), tiers, {(p, k): n for p, k, n in d["used"]}, lot_state,  # type: ignore[arg-type]
                      d["movements_before"], tuple(d["records"]), d["book"])
