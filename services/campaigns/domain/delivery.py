"""Delivery receipts (issue 14): what the channel systems said happened to each touch, and the rates.

A touch's state is the highest status any of its receipts reports, ranked ``failed < delivered < opened <
replied``: each status implies the ones before it (a reply was opened, an open was delivered), so a late
``delivered`` never undoes a reply, a ``failed`` after a ``delivered`` never undoes the delivery, and the
state does not depend on the order receipts arrive in. A failed touch's reason is the one of its newest
``failed`` receipt (by event time, then source and id). A touch no receipt speaks of is ``pending``.

A reply moves its member to a campaign's follow-up step when it holds one of the step's ``match``
keywords (literal text, case-insensitive, full-width characters folded in the reply and the keywords
alike), or always without any. Keywords, never regular expressions: the reply is the customer's text, and
a pattern (even one refusing nested repeats, ``\\d+\\s*\\d+x``) can backtrack for seconds to hours on a
crafted one, stalling the consumer.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

RANK = {"failed": 1, "delivered": 2, "opened": 3, "replied": 4}
NO_REASON = "unknown"
OTHER_REASON = "other"
# A gateway's reason is free text and may name the person (``张伟 refused: wrong person``): results show it
# only when it is a code, or one of the carriers' and gateways' common Chinese reasons.
CODE = re.compile(r"[A-Za-z0-9_.:/-]{1,40}")
CARRIER_REASONS = frozenset({"空号", "停机", "关机", "拒收", "黑名单", "超时", "欠费", "无法接通", "用户忙",
                             "不在服务区", "号码无效", "号码错误", "用户不存在", "已退订", "被拦截", "内容违规",
                             "频率超限"})


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
    # A reply whose sender identity resolved to another customer than the touch's member (a gateway's mix-up):
    # it counts for the touch's status but moves no one on.
    mismatched: bool = False


@dataclass(frozen=True)
class TouchState:
    """Where one touch stands after all its receipts."""

    status: str = "pending"  # pending, failed, delivered, opened or replied
    reason: str | None = None  # of a failed touch
    mismatched_replies: int = 0  # replies to it that came from another customer

    @property
    def rank(self) -> int:
        """0 for pending, then the receipt ranks."""
        return RANK.get(self.status, 0)


def states(receipts: Iterable[Receipt]) -> dict[str, TouchState]:
    """Each touch's state from its receipts, whatever order they came in."""
    best: dict[str, str] = {}
    failure: dict[str, tuple[tuple[int, str, str], str]] = {}
    mismatched: Counter = Counter()
    for r in receipts:
        mismatched[r.touch_id] += bool(r.mismatched)
        if RANK[r.status] > RANK.get(best.get(r.touch_id, ""), 0):
            best[r.touch_id] = r.status
        if r.status == "failed":
            order = (r.time_ms, r.source, r.id)
            held = failure.get(r.touch_id)
            if held is None or order > held[0]:
                failure[r.touch_id] = (order, r.reason or NO_REASON)
    return {t: TouchState(s, failure[t][1] if s == "failed" else None, mismatched[t]) for t, s in best.items()}


@dataclass(frozen=True)
class DeliveryFigures:
    """Touches of a group and what became of them; rates over the touches sent."""

    touches: int = 0
    delivered: int = 0  # delivered, opened or replied
    failed: int = 0
    opened: int = 0  # opened or replied
    replied: int = 0
    follow_ups: int = 0  # members of the group sent the follow-up touch
    mismatched_replies: int = 0  # replies to the group's touches from another customer (no follow-up)
    failure_reasons: dict[str, int] = field(default_factory=dict)  # by shown_reason

    @property
    def pending(self) -> int:
        """Touches no receipt has spoken of yet."""
        return self.touches - self.delivered - self.failed

    def rate(self, count: int) -> float | None:
        """A count over the touches sent; None until a receipt for one of them has come (a channel system
        that sends no receipts has measured nothing: its touches are not 0% delivered)."""
        return count / self.touches if self.touches and self.pending < self.touches else None


TOUCH_SUMS = 7  # touches, delivered, failed, opened, replied, follow-ups, mismatched replies (see ``add_touch``)


def add_touch(acc: list, at: int, state: TouchState, followed: bool, reasons: Counter, sign: int = 1) -> None:
    """Add (``sign`` 1) or take off (-1) one member's touch in the sums ``acc[at:at + TOUCH_SUMS]`` and its
    failure reason in ``reasons``: results are kept as such sums, brought forward a member at a time."""
    rank = state.rank
    acc[at] += sign
    if rank >= RANK["delivered"]:
        acc[at + 1] += sign
        if rank >= RANK["opened"]:
            acc[at + 3] += sign
            if rank >= RANK["replied"]:
                acc[at + 4] += sign
    if followed:
        acc[at + 5] += sign
    if state.mismatched_replies:
        acc[at + 6] += sign * state.mismatched_replies
    if state.status == "failed":
        acc[at + 2] += sign
        reasons[shown_reason(state.reason)] += sign


def figures_of(acc: list, at: int, reasons: Counter) -> DeliveryFigures:
    """The figures the sums ``acc[at:at + TOUCH_SUMS]`` and ``reasons`` stand for (see ``add_touch``)."""
    return DeliveryFigures(*acc[at:at + TOUCH_SUMS], dict(sorted((k, n) for k, n in reasons.items() if n)))


def figures(touched: Iterable[tuple[TouchState, bool]]) -> DeliveryFigures:
    """The figures of some members' touches: (state of the member's touch, whether it was followed up)."""
    acc, reasons = [0] * TOUCH_SUMS, Counter()
    for state, followed in touched:
        add_touch(acc, 0, state, followed, reasons)
    return figures_of(acc, 0, reasons)


def shown_reason(reason: str | None) -> str:
    """A failure reason as results show it: a code (``invalid_number``, ``SMS:UNDELIV``, ``E102``) or a common
    carrier reason as it came, anything else ``other`` (the full reason stays sealed in the store)."""
    if not reason:
        return NO_REASON
    return reason if CODE.fullmatch(reason) or reason in CARRIER_REASONS else OTHER_REASON


def folded_keyword(keyword: str) -> str:
    """A ``match`` keyword folded as replies are (a keyword typed full-width, ``ＹＥＳ``, finds the reply ``ＹＥＳ``,
    which reads ``YES``) and case-folded; every character is literal text, so a full-width ``？`` or ``（`` stays a
    question mark or a parenthesis (``是？`` never matches every reply)."""
    return unicodedata.normalize("NFKC", keyword).casefold()


def keywords(match: str | list[str] | None) -> list[str] | None:
    """A follow-up's ``match`` as the folded keywords a reply is searched for (None: every reply moves on)."""
    if match is None:
        return None
    return [folded_keyword(k) for k in ([match] if isinstance(match, str) else match)]


def normalised(text: str) -> str:
    """A reply as it is matched: Unicode-compatibility folded (full-width ``ＹＥＳ`` reads ``YES``), trimmed."""
    return unicodedata.normalize("NFKC", text).strip()


def reply_matches(words: list[str] | None, reply_text: str | None) -> bool:
    """Whether a reply moves its member to the follow-up: any reply without keywords, else one holding any of
    them as literal text (case-insensitive). A substring search, linear in the reply: no pattern a campaign
    defines can make the consumer backtrack on a crafted reply."""
    if words is None:
        return True
    if reply_text is None:
        return False
    text = normalised(reply_text).casefold()
    return any(w in text for w in words)
