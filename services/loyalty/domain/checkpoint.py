"""An account at a horizon, so a settle replays only what happened since instead of the whole history.

A settle is a pure function of a member's facts, and replaying every fact on every event makes each
event cost more the longer the member's history. A checkpoint holds what the three replays (tier
timeline, cap room, lots) had reached at a horizon, a month start some months back; the next settle
starts there with the facts from the horizon on. It is only valid while nothing before the horizon
changed: the same records and rule book, no movement dated before it that it has not counted, and no
new fact dated before it (the caller knows which facts a batch added); otherwise the account is
settled from all its facts, exactly as without a checkpoint, and a new checkpoint is taken.

Beside that monthly checkpoint an account keeps a second one where its last settle stopped (the second
of its latest purchase): a member whose events arrive in time order then settles each new one from there,
replaying only what is new, however long the history. The store keeps both in one text, a line each; a
late event (dated before the second one) settles from the monthly one, one dated before that from every fact.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from services.loyalty.domain.calendar import add_months, month_of, month_start
from services.loyalty.domain.earning import Used
from services.loyalty.domain.lots import Lot, LotState
from services.loyalty.domain.tiers import TierChange, TierState

VERSION = 1
PARSED_KEPT = 64  # parsed checkpoints kept per process, by their exact text
_parsed: OrderedDict[str, Checkpoint | None] = OrderedDict()


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


@lru_cache(maxsize=256)  # every settle of a batch asks at the batch's one moment
def horizon(now: datetime, zone, lag_months: int) -> datetime:
    """Where the next checkpoint goes: the start of the month ``lag_months`` before ``now``'s month."""
    return month_start(add_months(month_of(now, zone), -lag_months), zone)


def frontier(times: list[datetime], *, start: datetime, now: datetime) -> datetime:
    """Where a settle from ``start`` may keep its own checkpoint: the second of its latest purchase (whole
    seconds, so the store's millisecond bound picks exactly the purchases from there on), never after ``now``."""
    if not times:
        return start
    return max(start, min(max(times), now).replace(microsecond=0))


def split(text: str) -> tuple[str, str | None]:
    """The monthly checkpoint's text and the latest one's (None when the account keeps only the first)."""
    month, _, recent = text.partition("\n")
    return month, recent or None


def join(month: str, recent: Checkpoint) -> str:
    """What the store keeps for an account with both checkpoints (JSON has no raw newline)."""
    text = dump(recent)
    _keep(text, recent)  # the next settle reads this very text back: it need not parse it
    return f"{month}\n{text}"


def _keep(text: str, cp: Checkpoint | None) -> None:
    _parsed[text] = cp
    _parsed.move_to_end(text)
    while len(_parsed) > PARSED_KEPT:
        _parsed.popitem(last=False)


def _t(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


_ZONES: dict = {}


def _d(text: str | None) -> datetime | None:
    if text is None:
        return None
    # One tzinfo object per offset: a checkpoint's thousands of moments then compare and sort without asking
    # each one its offset (the same instants, written the same way).
    moment = datetime.fromisoformat(text)
    zone = _ZONES.setdefault(moment.utcoffset(), moment.tzinfo)
    return moment if zone is moment.tzinfo else moment.replace(tzinfo=zone)


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
    """A checkpoint from its JSON text; None for one an older version of the service wrote.

    Settles treat a checkpoint as read-only (every replay copies what it changes), so the parse of a text
    seen lately is shared: it is a pure function of the text.
    """
    if text in _parsed:
        _parsed.move_to_end(text)
        return _parsed[text]
    out = _load(text)
    _keep(text, out)
    return out


def _load(text: str) -> Checkpoint | None:
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
