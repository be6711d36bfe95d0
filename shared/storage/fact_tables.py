"""Tables of customer facts that several services keep the same way, for their SQLite and MongoDB stores.

Profile fields (``attributes``): one row per record and field, the newest value winning, with equal
times ordered by source then event id, so arrival order never changes what is kept.
"""

from __future__ import annotations

import json
from typing import Any

from shared.contract.facts import FieldValue

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


def compact_json(value: Any) -> str:
    """Compact JSON for stored values."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def sqlite_put_attributes(conn, values: list[tuple[str, list[FieldValue]]]) -> None:
    """Set fields of records where the value is newer than the one held (SQLite ``attributes``)."""
    conn.executemany(_PUT_ATTRIBUTES, [(record_id, v.field, compact_json(v.value), v.time_ms, v.source, v.event_id)
                                       for record_id, vs in values for v in vs])


def mongo_insert_new(coll, docs: list[dict]) -> set:
    """Insert the documents whose ``_id`` is not held yet (one read, one bulk insert); returns their ids."""
    unique = {d["_id"]: d for d in docs}
    if not unique:
        return set()
    held = {d["_id"] for d in coll.find({"_id": {"$in": list(unique)}}, {"_id": 1})}
    fresh = [d for k, d in unique.items() if k not in held]
    if fresh:
        coll.insert_many(fresh, ordered=False)
    return {d["_id"] for d in fresh}
