"""Staff tier overrides as the tier timeline sees them: a tier held from one moment to another.

While a hold is in force the member's tier is the held one: a purchase does not upgrade it and a
review does not touch it (the purchases still count in the window). When it ends (its last day is
over, or staff lifted it early) the normal rules resume from that moment: the member keeps the
tier until a purchase meets a better one or the next review decides, as after any upgrade.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class TierHold:
    """Tier ``tier`` held over ``[start, end)``, set by override ``override_id``."""

    override_id: str
    tier: str
    start: datetime
    end: datetime
    until: str  # the last day it holds (YYYY-MM-DD), for the reason the history shows

    def reason(self) -> str:
        """Why the tier changed at the hold's start: no staff note (it may name people), the override's id."""
        return f"staff override {self.override_id} until {self.until}"


def holding(holds: tuple[TierHold, ...], at: datetime) -> TierHold | None:
    """The hold in force at ``at`` (the latest started, should two overlap)."""
    found = None
    for h in holds:
        if h.start <= at < h.end and (found is None or h.start >= found.start):
            found = h
    return found
