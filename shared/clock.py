"""Time, injectable: services take a clock so tests and replays can set it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Now, timezone-aware (UTC)."""
    return datetime.now(UTC)


def iso_utc(moment: datetime) -> str:
    """A fixed-width UTC timestamp that sorts as text (``2026-11-20T02:15:00.000000Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    """The aware datetime of a stored timestamp."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
