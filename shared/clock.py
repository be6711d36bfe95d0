"""Time, injectable: services take a clock so tests and replays can set it.

Stored timestamps are fixed-width UTC text that sorts as text; the moments and days the API takes
are bounded to ``EARLIEST``..``LATEST`` (1900-01-01..2100-12-31), so no stored time falls outside what
the stores hold and read back, and no date arithmetic on them (windows, expiry, weeks) overflows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, GetJsonSchemaHandler

Clock = Callable[[], datetime]

EARLIEST = date(1900, 1, 1)
LATEST = date(2100, 12, 31)
# Years before 1000 were once written unpadded ("34-12-26T…"); such rows are still read back.
_SHORT_YEAR = re.compile(r"^(\d{1,3})-")


def system_clock() -> datetime:
    """Now, timezone-aware (UTC)."""
    return datetime.now(UTC)


def iso_utc(moment: datetime) -> str:
    """A fixed-width UTC timestamp that sorts as text (``2026-11-20T02:15:00.000000Z``)."""
    # isoformat pads the year to four digits (strftime("%Y") does not before 1000 on glibc) and costs a third of
    # a strftime: identity stamps each event it resolves twice with this. Its "+00:00" becomes the "Z".
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def parse_iso(text: str) -> datetime:
    """The aware datetime of a stored timestamp."""
    text = _SHORT_YEAR.sub(lambda m: f"{int(m.group(1)):04d}-", text, count=1)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def check_moment(value: datetime) -> datetime:
    """``value`` if its year (as written, in its own zone) is one the platform takes, else ValueError
    (pydantic makes it a 422)."""
    if not EARLIEST.year <= value.year <= LATEST.year:
        raise ValueError(f"must be between {EARLIEST.isoformat()} and {LATEST.isoformat()}")
    return value


def check_day(value: date) -> date:
    """``value`` if it lies within the years the platform takes, else ValueError."""
    if not EARLIEST <= value <= LATEST:
        raise ValueError(f"must be between {EARLIEST.isoformat()} and {LATEST.isoformat()}")
    return value


class _Years:
    """The bound in the OpenAPI document too, so a client (or a fuzzer) can tell before it sends."""

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        schema = handler(core_schema)
        schema["pattern"] = r"^(19[0-9]{2}|20[0-9]{2}|2100)-"
        return schema


# Field types for schemas and query parameters that reach a store or date arithmetic.
Moment = Annotated[AwareDatetime, AfterValidator(check_moment), _Years()]
Day = Annotated[date, AfterValidator(check_day), _Years()]
