"""Delivery receipts (issue 14): what the channel systems said happened to each touch, and the rates.

A touch's state is the highest status any of its receipts reports, ranked ``failed < delivered < opened <
replied``: each status implies the ones before it (a reply was opened, an open was delivered), so a late
``delivered`` never undoes a reply, a ``failed`` after a ``delivered`` never undoes the delivery, and the
state does not depend on the order receipts arrive in. A failed touch's reason is the one of its newest
``failed`` receipt (by event time, then source and id). A touch no receipt speaks of is ``pending``.

A reply moves its member to a campaign's follow-up step when the step's ``match`` (a keyword or regular
expression, searched case-insensitively in the Unicode-folded reply) finds something, or always without
one; the pattern is folded the same way. Patterns whose repeated group holds another repeat or an
alternation are refused: the reply is the customer's text, and such patterns can backtrack for
exponential time on a crafted one.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

RANK = {"failed": 1, "delivered": 2, "opened": 3, "replied": 4}
NO_REASON = "unknown"


@dataclass(frozen=True)
class Receipt:
    """One receipt as kept: which touch, what status, when (and the failure reason, scrubbed)."""

    source: str
    id: str
    touch_id: str
    campaign_id: str
    status: str
    reason: str | None
    time_ms: int


@dataclass(frozen=True)
class TouchState:
    """Where one touch stands after all its receipts."""

    status: str = "pending"  # pending, failed, delivered, opened or replied
    reason: str | None = None  # of a failed touch

    @property
    def rank(self) -> int:
        """0 for pending, then the receipt ranks."""
        return RANK.get(self.status, 0)


def states(receipts: Iterable[Receipt]) -> dict[str, TouchState]:
    """Each touch's state from its receipts, whatever order they came in."""
    best: dict[str, str] = {}
    failure: dict[str, tuple[tuple[int, str, str], str]] = {}
    for r in receipts:
        if RANK[r.status] > RANK.get(best.get(r.touch_id, ""), 0):
            best[r.touch_id] = r.status
        if r.status == "failed":
            order = (r.time_ms, r.source, r.id)
            held = failure.get(r.touch_id)
            if held is None or order > held[0]:
                failure[r.touch_id] = (order, r.reason or NO_REASON)
    return {t: TouchState(s, failure[t][1] if s == "failed" else None) for t, s in best.items()}


@dataclass(frozen=True)
class DeliveryFigures:
    """Touches of a group and what became of them; rates over the touches sent."""

    touches: int = 0
    delivered: int = 0  # delivered, opened or replied
    failed: int = 0
    opened: int = 0  # opened or replied
    replied: int = 0
    follow_ups: int = 0  # members of the group sent the follow-up touch
    failure_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def pending(self) -> int:
        """Touches no receipt has spoken of yet."""
        return self.touches - self.delivered - self.failed

    def rate(self, count: int) -> float | None:
        """A count over the touches sent; None until a receipt for one of them has come (a channel system
        that sends no receipts has measured nothing: its touches are not 0% delivered)."""
        return count / self.touches if self.touches and self.pending < self.touches else None


def figures(touched: Iterable[tuple[TouchState, bool]]) -> DeliveryFigures:
    """The figures of some members' touches: (state of the member's touch, whether it was followed up)."""
    touches = delivered = failed = opened = replied = follow_ups = 0
    reasons: Counter = Counter()
    for state, followed in touched:
        touches += 1
        rank = state.rank
        delivered += rank >= RANK["delivered"]
        opened += rank >= RANK["opened"]
        replied += rank >= RANK["replied"]
        follow_ups += followed
        if state.status == "failed":
            failed += 1
            reasons[state.reason or NO_REASON] += 1
    return DeliveryFigures(touches, delivered, failed, opened, replied, follow_ups, dict(sorted(reasons.items())))


def _nested_repeat(items: Any, inside: bool) -> bool:
    """Whether a parsed pattern repeats a group that itself repeats or alternates (backtracking that can
    take exponential time on a crafted reply)."""
    # The parse tree of the standard ``re`` engine (``re._parser``/``re._constants`` since Python 3.11).
    from re import _constants as c  # type: ignore[attr-defined]

    for op, arg in items:
        if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            if inside or _nested_repeat(arg[2], True):
                return True
        elif op is c.BRANCH:
            if inside or any(_nested_repeat(b, inside) for b in arg[1]):
                return True
        elif op is c.SUBPATTERN:
            if _nested_repeat(arg[3], inside):
                return True
        elif op in (c.ASSERT, c.ASSERT_NOT):
            if _nested_repeat(arg[1], inside):
                return True
    return False


def check_pattern(pattern: str) -> re.Pattern[str]:
    """A follow-up's ``match`` compiled (case-insensitive), or ValueError saying why it is refused."""
    from re import _parser  # type: ignore[attr-defined]

    pattern = folded_pattern(pattern)
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc.msg}") from None
    except (OverflowError, RecursionError):  # a{99999999999}: not a re.error, and must not become a 500
        raise ValueError("not a valid regular expression: a repetition or nesting is too large") from None
    if _nested_repeat(_parser.parse(pattern).data, False):
        raise ValueError("a repeated group may not hold another repeat or an alternation")
    return compiled


def folded_pattern(pattern: str) -> str:
    """A ``match`` folded as replies are (a keyword typed full-width, ``ＹＥＳ``, finds the reply ``ＹＥＳ``, which
    reads ``YES``); a character that folds is literal text, so a full-width ``？`` or ``（`` typed in a keyword
    stays a question mark or a parenthesis and never becomes regex syntax (``是？`` must not match every reply)."""
    out = []
    for ch in unicodedata.normalize("NFC", pattern):
        folded = unicodedata.normalize("NFKC", ch)
        out.append(ch if folded == ch else re.escape(folded))
    return "".join(out)


def normalised(text: str) -> str:
    """A reply as it is matched: Unicode-compatibility folded (full-width ``ＹＥＳ`` reads ``YES``), trimmed."""
    return unicodedata.normalize("NFKC", text).strip()


def reply_matches(pattern: re.Pattern[str] | None, reply_text: str | None) -> bool:
    """Whether a reply moves its member to the follow-up: any reply without a pattern, else one the
    pattern finds (case-insensitive) in."""
    if pattern is None:
        return True
    return reply_text is not None and pattern.search(normalised(reply_text)) is not None
