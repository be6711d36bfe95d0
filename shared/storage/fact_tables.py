"""Tables of customer facts that several services keep the same way, for their SQLite and MongoDB stores.

Profile fields (``attributes``): one row per record and field, the newest value winning, with equal
times ordered by source then event id, so arrival order never changes what is kept.
"""

from __future__ import annotations

import json
from typing import Any

from shared.contract.facts import FieldValue
from shared.storage.crypto import KeyRing, is_sealed

ATTRIBUTES_SQL = """
CREATE TABLE IF NOT EXISTS attributes (
  record_id TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL, time_ms INTEGER NOT NULL,
  source TEXT NOT NULL, event_id TEXT NOT NULL, PRIMARY KEY (record_id, field)
) WITHOUT ROWID;
"""

_PUT_ATTRIBUTES = (
    "INSERT INTO attributes VALUES (?,?,?,?,?,?) ON CONFLICT(record_id, field) DO UPDATE SET"
    " value = excluded.value, time_ms = excluded.time_ms, source = excluded.source,"
    " event_id = excluded.event_id WHERE (excluded.time_ms, excluded.source, excluded.event_id)"
    " > (attributes.time_ms, attributes.source, attributes.event_id)"
)


# What ``json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)`` makes, from one encoder:
# ``dumps`` with any option builds a new encoder per call, which cost more than encoding a profile field (issue 14).
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def compact_json(value: Any) -> str:
    """Compact JSON for stored values."""
    return _COMPACT.encode(value)


def sqlite_put_attributes(conn, values: list[tuple[str, list[FieldValue]]], *, keys: KeyRing) -> None:
    """Set fields of records where the value is newer than the one held (SQLite ``attributes``); personal
    fields sealed under their record's key."""
    keys.prepare(record_id for record_id, _ in values)
    conn.executemany(_PUT_ATTRIBUTES, [
        (record_id, v.field, seal_field(keys, record_id, v.field, v.value), v.time_ms, v.source, v.event_id)
        for record_id, vs in values for v in vs])


# Profile fields kept in clear: consent flags and WeChat follow state say nothing about who a person is,
# and rules filter on them; every other field (name, birthday, e-mail, gender, city, attributes.*) is sealed.
_CLEAR_PREFIXES = ("consent.", "wechat_following")


def is_personal_field(field: str) -> bool:
    """Whether a profile field is sealed at rest."""
    return not field.startswith(_CLEAR_PREFIXES)


def seal_field(keys: KeyRing, record_id: str, field: str, value: Any) -> str:
    """The stored text of a profile field: compact JSON, sealed under the record's key when personal."""
    text = compact_json(value)
    return keys.seal(record_id, f"attributes.{field}", text) if is_personal_field(field) else text  # type: ignore[return-value]


def open_field(keys: KeyRing, record_id: str, field: str, stored: str) -> Any:
    """The value of a profile field stored as JSON text (None once the record's key is shredded)."""
    if not is_sealed(stored):
        return json.loads(stored)
    text = keys.open(record_id, f"attributes.{field}", stored)
    return None if text is None else json.loads(text)


def open_doc_field(keys: KeyRing, record_id: str, field: str, stored: Any) -> Any:
    """The value of a profile field of a MongoDB document kept as the value itself when not sealed."""
    return open_field(keys, record_id, field, stored) if is_sealed(stored) else stored


def seal_doc_field(keys: KeyRing, record_id: str, field: str, value: Any) -> Any:
    """A profile field's value for a MongoDB document: sealed text when personal, the value itself otherwise."""
    return seal_field(keys, record_id, field, value) if is_personal_field(field) else value


def mongo_insert_new(coll, docs: list[dict]) -> set:
    """Insert the documents whose ``_id`` is not held yet (one read, one bulk insert); returns their ids."""
    unique: dict = {}
    for d in docs:
        # The first of an id given twice is kept, as SQLite's INSERT OR IGNORE keeps it and the callers return it.
        unique.setdefault(d["_id"], d)
    if not unique:
        return set()
    held = {d["_id"] for d in coll.find({"_id": {"$in": list(unique)}}, {"_id": 1})}
    fresh = [d for k, d in unique.items() if k not in held]
    if fresh:
        coll.insert_many(fresh, ordered=False)
    return {d["_id"] for d in fresh}
