"""What list routes and bodies take, bounded so that no input reaches a store it cannot hold.

SQLite binds integers as signed 64-bit and MongoDB's ``skip`` takes one too, so an offset of 2**63 was a
500; a cursor is opaque, so anything a client makes up comes back as ``invalid_cursor``, never as a value
the store chokes on.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import Query

from shared.http.errors import InvalidInput

# Past ten million rows, offset paging is the wrong tool (and a scan of that many rows per page).
MAX_OFFSET = 10_000_000
# Store counters and amounts stay far inside a signed 64-bit integer.
MAX_COUNT = 100_000_000
MAX_CURSOR = 1000
MAX_ID = 200
# Row ids in a path: a signed 64-bit integer, what SQLite and MongoDB store.
MAX_ROW_ID = 2**63 - 1
# The keyset values a cursor may carry: epoch milliseconds (negative before 1970), counters, short texts.
_MAX_CURSOR_INT = 2**53

Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description=f"rows to skip, at most {MAX_OFFSET:,}")]
Cursor = Annotated[str | None, Query(max_length=MAX_CURSOR, description="next_cursor of the previous page")]


def limit(default: int, maximum: int) -> Any:
    """A page-size query parameter from 1 to ``maximum``."""
    return Query(default, ge=1, le=maximum)


def encode_cursor(key: tuple[Any, ...]) -> str:
    """An opaque cursor for a keyset position."""
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def decode_cursor(cursor: str | None, shape: tuple[type, ...]) -> tuple[Any, ...] | None:
    """The keyset position behind a cursor this API issued (values of the types in ``shape``), or
    InvalidInput ``invalid_cursor`` for anything else."""
    if not cursor:
        return None
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error, RecursionError):
        values = None
    if not isinstance(values, list) or len(values) != len(shape) or not all(
            _fits(v, t) for v, t in zip(values, shape, strict=True)):
        raise InvalidInput("invalid_cursor", "cursor is not one this API issued")
    return tuple(values)


def _fits(value: Any, kind: type) -> bool:
    if kind is int:
        return type(value) is int and -_MAX_CURSOR_INT <= value <= _MAX_CURSOR_INT
    if kind is str:
        if not isinstance(value, str) or len(value) > MAX_ID * 2:
            return False
        try:
            value.encode()  # a lone surrogate: no store can take it
        except UnicodeEncodeError:
            return False
        return True
    return False
