"""Alerts keeps profile fields sealed at rest on every backend; the birthday rule reads them opened in memory."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from shared.contract.facts import FieldValue
from shared.storage.membership import Membership


def _raw(store) -> str:
    db = getattr(store, "db", None)
    if db is not None:
        path = Path(db.path)
        return "".join(p.read_bytes().decode("latin-1") for p in path.parent.glob(path.name + "*"))
    database = store.mdb.database
    return repr([list(database[name].find()) for name in database.list_collection_names()])


def test_birthdays_and_names_are_sealed_and_the_facts_still_hold_them(store):
    with store.transaction():
        store.apply_memberships([Membership("r_1", "c_a", "2026-11-20T00:00:01.000000Z")])
        store.put_attributes([("r_1", [FieldValue("birthday", "1985-03-12", 1000, "web/shop", "e1"),
                                       FieldValue("name", "Zhang Sanfeng", 1000, "web/shop", "e1"),
                                       FieldValue("attributes.account_manager", "am-7", 1000, "web/shop", "e1")])])
    facts = store.facts(["c_a"])["c_a"]
    assert (facts.birthday, facts.account_manager) == (date(1985, 3, 12), "am-7")
    raw = _raw(store)
    assert [c for c in ("1985-03-12", "Zhang Sanfeng") if c in raw] == []
    assert store.keys.shred("r_1") is True
    assert store.facts(["c_a"])["c_a"].birthday is None


def test_staff_notes_on_alerts_are_sealed_and_read_back(store):
    from datetime import UTC, datetime

    from services.alerts.domain.workflow import Alert

    t0 = datetime(2026, 11, 20, 4, 0, tzinfo=UTC)
    alert = Alert(alert_id="al_1", customer_id="c_a", type="complaint", severity="red", status="acknowledged",
                  store_id="SH-001", manager=None, action="act", opened_at=t0, updated_at=t0, last_trigger_at=t0,
                  origin_id="c_a", detail={"n": 1}, acknowledged_note="called 135 1234 0001 twice",
                  note="Zhang Sanfeng says the jade counter was closed")
    with store.transaction():
        store.put_alerts([alert])
    assert store.alert("al_1") == alert
    raw = _raw(store)
    assert [c for c in ("1234 0001", "Zhang Sanfeng", "jade counter") if c in raw] == []
