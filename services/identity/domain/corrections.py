"""Rules of staff corrections (issue 14): a corrected profile field is a value from the ``staff`` source, and
which of a customer's values a correction may not overrule.

A staff value takes part in the one rule every profile value follows, the newest by event time wins: it
is dated when staff made it, so it outranks every channel value seen before, however late that value
arrives (an offline till uploading a day later does not undo a correction), until a channel reports a
value dated after the correction.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.contract.facts import FieldValue

STAFF = "staff"


def staff_source(by: str) -> str:
    """The source a staff correction's values carry: ``staff/<who>``."""
    return f"{STAFF}/{by}"


def staff_by(source: str) -> str | None:
    """Who made a staff value (None for a channel's value)."""
    channel, _, who = source.partition("/")
    return who if channel == STAFF else None


def staff_values(fields: Mapping[str, object], *, by: str, at_ms: int, correction_id: str) -> list[FieldValue]:
    """The field values a correction sets, in field order; custom attributes as ``attributes.<name>``."""
    return [FieldValue(name, value, at_ms, staff_source(by), correction_id) for name, value in sorted(fields.items())]


def overruled_by_channels(values: list[FieldValue], held: Mapping[str, FieldValue]) -> list[str]:
    """The fields of a correction whose held value is dated after it (a channel's clock ahead of now): by the
    newest-wins rule the correction would not show, so it is refused rather than silently dropped."""
    return sorted(v.field for v in values if v.field in held and held[v.field].order() >= v.order())
