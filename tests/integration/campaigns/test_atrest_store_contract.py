"""Campaigns keeps profile fields sealed at rest on every backend; audiences (age bands) read them opened
in memory."""

from __future__ import annotations

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


def test_profile_fields_are_sealed_and_customer_facts_still_hold_them(store):
    born = FieldValue("birthday", "1985-03-12", 1_000, "web/shop", "e1")
    gender = FieldValue("gender", "F", 1_000, "web/shop", "e1")
    sms = FieldValue("consent.sms", True, 1_000, "web/shop", "e1")
    with store.transaction():
        store.apply_memberships([Membership("r_1", "c_a", "t1")])
        store.put_attributes([("r_1", [born, gender, sms])])
    [facts] = store.customer_facts(as_of_ms=5_000)
    assert dict(facts.attributes) == {"birthday": born, "gender": gender, "consent.sms": sms}
    assert "1985-03-12" not in _raw(store)
    assert store.keys.shred("r_1") is True
    [facts] = store.customer_facts(as_of_ms=5_000)
    assert (facts.attributes["birthday"].value, facts.attributes["consent.sms"].value) == (None, True)
