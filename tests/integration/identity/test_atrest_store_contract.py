"""Identity's store seals every personal field at rest, on every backend: phones, identifiers (found by
their keyed pseudonym, never decrypted to search), timeline payloads and profile fields; shredding a
record's key leaves nothing of it readable."""

from __future__ import annotations

import json
from pathlib import Path

from services.identity.domain.resolution import Found
from services.identity.store import EventRow, IdentifierRow
from shared.contract.facts import FieldValue

PHONE = "+8613512340001"
EMAIL = "sanfeng.atrest@example.com"
PAYLOAD = json.dumps({"identity": {"phone": "135 1234 0001", "mobile_backup": "13698760002"},
                      "text": "waited forty minutes at the jade counter"})
CLEAR = ["13512340001", "1234 0001", "13698760002", "sanfeng.atrest", "Zhang Sanfeng", "1985-03-12",
         "jade counter", "window seat"]


def _fill(store) -> None:
    with store.transaction():
        store.create_record("c_a", phone=PHONE, at="T1")
        store.link("c_a", [("phone", PHONE), ("email", EMAIL)], source="pos/SH-001", event_id="e1", at="T1")
        store.add_events([EventRow("pos/SH-001", "e1", "c_a", "crm.complaint", "pos", "T1", 1, PAYLOAD, "T1")])
        store.put_attributes([("c_a", [FieldValue("name", "Zhang Sanfeng", 1, "web/shop", "e2"),
                                       FieldValue("birthday", "1985-03-12", 1, "web/shop", "e2"),
                                       FieldValue("attributes.custom", {"seat": "window seat"}, 1, "web/shop", "e2"),
                                       FieldValue("consent.sms", True, 1, "web/shop", "e2")])])


def _raw(store) -> str:
    """Everything the backend holds, as text: the SQLite files' bytes, or every MongoDB document."""
    db = getattr(store, "db", None)
    if db is not None:
        path = Path(db.path)
        return "".join(p.read_bytes().decode("latin-1") for p in path.parent.glob(path.name + "*"))
    database = store.mdb.database
    return repr([list(database[name].find()) for name in database.list_collection_names()])


def test_every_personal_field_reads_back_and_none_is_held_in_clear(store):
    _fill(store)
    assert store.record("c_a").phone == PHONE
    assert store.identifiers(["c_a"]) == [IdentifierRow("email", EMAIL, "c_a", "T1", "pos/SH-001", "e1"),
                                          IdentifierRow("phone", PHONE, "c_a", "T1", "pos/SH-001", "e1")]
    assert store.find([("phone", PHONE), ("email", EMAIL), ("phone", "+8613698760002")]) == {
        ("phone", PHONE): Found("c_a", "c_a", True), ("email", EMAIL): Found("c_a", "c_a", True)}
    assert [r.payload for r in store.timeline(["c_a"], before=None, limit=10)] == [PAYLOAD]
    assert {v.field: v.value for v in store.attributes(["c_a"])} == {
        "name": "Zhang Sanfeng", "birthday": "1985-03-12", "attributes.custom": {"seat": "window seat"},
        "consent.sms": True}
    raw = _raw(store)
    assert [c for c in CLEAR if c in raw] == []


def test_shredding_a_record_key_leaves_its_personal_fields_unreadable(store):
    _fill(store)
    assert store.keys.shred("c_a") is True
    assert store.record("c_a").phone is None
    assert store.identifiers(["c_a"]) == []
    assert [r.payload for r in store.timeline(["c_a"], before=None, limit=10)] == ["{}"]
    assert {v.field: v.value for v in store.attributes(["c_a"])} == {
        "name": None, "birthday": None, "attributes.custom": None, "consent.sms": True}
    # Lookups still find the record by pseudonym: erasure (which calls shred) removes those rows itself.
    assert store.find([("phone", PHONE)]) == {("phone", PHONE): Found("c_a", "c_a", True)}


def test_a_conflict_decision_note_is_sealed_and_read_back(store):
    from services.identity.store import ConflictRow

    with store.transaction():
        store.add_conflict(ConflictRow("x_1", "shared_identifier", "phone", "ab12", ("c_a", "c_b"), "pos/SH-001",
                                       "e1", "T1"))
        store.set_conflict_status("x_1", status="dismissed", by="ops", note="Zhang Sanfeng confirmed by 135 1234 0001")
    [row] = store.conflicts(status=None, customer_id=None, offset=0, limit=10)
    assert (row.status, row.note) == ("dismissed", "Zhang Sanfeng confirmed by 135 1234 0001")
    assert [c for c in ("Zhang Sanfeng", "1234 0001") if c in _raw(store)] == []


def test_identifiers_written_before_encryption_are_sealed_when_the_store_opens(tmp_path):
    import sqlite3

    import mongomock

    from services.identity.store.mongo import MongoIdentityStore
    from services.identity.store.sqlite import SqliteIdentityStore
    from shared.storage.base import MongoDb

    # SQLite: a file with the identifiers table as it was, holding a phone in clear.
    path = tmp_path / "old.db"
    c = sqlite3.connect(path)
    c.executescript("""CREATE TABLE records (id TEXT PRIMARY KEY, root_id TEXT NOT NULL, merged_into TEXT, phone TEXT,
      created_at TEXT NOT NULL, updated_at TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE identifiers (type TEXT NOT NULL, value TEXT NOT NULL, record_id TEXT NOT NULL,
      first_seen TEXT NOT NULL, source TEXT NOT NULL, event_id TEXT NOT NULL, PRIMARY KEY (type, value)) WITHOUT ROWID;
    INSERT INTO records VALUES ('c_a', 'c_a', NULL, '+8613512340001', 'T1', 'T1');
    INSERT INTO identifiers VALUES ('phone', '+8613512340001', 'c_a', 'T1', 'pos/SH-001', 'e1');""")
    c.commit()
    c.close()
    mdb = MongoDb(mongomock.MongoClient()["old"])
    mdb["records"].insert_one({"_id": "c_a", "root_id": "c_a", "merged_into": None, "phone": PHONE,
                               "created_at": "T1", "updated_at": "T1"})
    mdb["identifiers"].insert_one({"type": "phone", "value": PHONE, "record_id": "c_a", "first_seen": "T1",
                                   "source": "pos/SH-001", "event_id": "e1"})
    for store in (SqliteIdentityStore(path), MongoIdentityStore(mdb)):
        assert store.find([("phone", PHONE)]) == {("phone", PHONE): Found("c_a", "c_a", True)}
        assert store.identifiers(["c_a"]) == [IdentifierRow("phone", PHONE, "c_a", "T1", "pos/SH-001", "e1")]
        assert store.record("c_a").phone == PHONE  # a phone in clear reads as it is until rewritten
    assert "+8613512340001" not in repr(list(mdb["identifiers"].find()))
