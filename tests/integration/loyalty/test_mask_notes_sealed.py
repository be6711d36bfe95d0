"""Loyalty's staff notes at rest (issue 12 review, D3): adjustment and cancellation reasons, and the stored
answers that repeat them, are sealed under the service's key in every adapter; rows written before are read
as they are."""

from __future__ import annotations

import json

from services.loyalty.domain.model import Entry
from services.loyalty.store import IdempotencyRow, RedemptionRow

NOTE = "Wang Fang (born March 12, 1985) asked, call 135_1234_0001"


def _raw(store, table: str) -> str:
    """Everything a table (collection) holds, as the file or database keeps it."""
    if hasattr(store, "mdb"):
        return json.dumps(list(store.mdb[table].find({})), default=str, ensure_ascii=False)
    rows = store.db.conn().execute(f"SELECT * FROM {table}").fetchall()  # noqa: S608 - fixed table names
    return json.dumps(rows, default=str, ensure_ascii=False)


def test_staff_notes_are_sealed_at_rest_and_read_back_whole(store):
    red = RedemptionRow("rd_1", "c_1", "c_1", "rw_1", 1, 100, "completed", "2026-05-01T00:00:00.000000Z", "ops")
    entry = Entry("a:1|manual|1", "c_1", "a:1", "manual", "adjust", 5, "2026-05-01T00:00:00.000000Z",
                  "2026-05-01T00:00:00.000000Z", {"adjustment_id": "a1", "reason": NOTE, "by": "ops"})
    answer = json.dumps({"adjustment_id": "a1", "reason": NOTE})
    with store.transaction():
        store.add_entries([entry])
        store.add_redemption(red)
        assert store.cancel_redemption("rd_1", at="t", by="ops", reason=NOTE) is True
        store.put_idempotent(IdempotencyRow("adjust:c_1", "k1", "fp", 201, answer, "t"))
    for table in ("ledger", "redemptions", "idempotency"):
        raw = _raw(store, table)
        assert "Wang Fang" not in raw and "1234_0001" not in raw, table
    assert store.entries(["c_1"], before=None, limit=5)[0].cause["reason"] == NOTE
    assert store.movements_of(["c_1"])[0].cause == {"adjustment_id": "a1", "reason": NOTE, "by": "ops"}
    assert store.redemption("rd_1").cancel_reason == NOTE
    assert store.redemptions_of(["c_1"], offset=0, limit=5)[0].cancel_reason == NOTE
    assert store.idempotent("adjust:c_1", "k1").body == answer


def test_notes_written_before_sealing_are_read_as_they_are(store):
    if hasattr(store, "mdb"):
        store.mdb["ledger"].insert_one({"_id": "old", "record_id": "c_1", "bucket": "a:0", "rule": "manual",
                                        "kind": "adjust", "points": 1, "effective_at": "t", "posted_at": "t",
                                        "cause": {"reason": "old clear note"}})
    else:
        with store.transaction():
            store.db.conn().execute("INSERT INTO ledger VALUES ('old','c_1','a:0','manual','adjust',1,'t','t',?)",
                                    (json.dumps({"reason": "old clear note"}),))
    assert store.movements_of(["c_1"])[0].cause == {"reason": "old clear note"}
