"""Issue 14, the pure rules of staff corrections: a replaced phone's new record id, the staff source and which
held values a correction may not overrule, and an assigned store outranking the computed owner."""

from __future__ import annotations

from services.identity.domain.corrections import overruled_by_channels, staff_by, staff_values
from services.identity.domain.owner import owning_store
from services.identity.domain.resolution import record_id_for, resolve
from shared.contract.facts import FieldValue, newest
from tests.unit.identity.support import PSEUDO

PHONE = ("phone", "+8613800138000")


def test_a_phone_replaced_n_times_creates_a_record_named_after_the_phone_and_n():
    first = record_id_for(PHONE, PSEUDO)
    assert first == "c_" + PSEUDO(*PHONE) == record_id_for(PHONE, PSEUDO, replaced=0)
    again = record_id_for(PHONE, PSEUDO, replaced=1)
    assert again.startswith("c_") and len({first, again, record_id_for(PHONE, PSEUDO, replaced=2)}) == 3
    assert again == record_id_for(PHONE, PSEUDO, replaced=1)  # replays name the same record
    res = resolve([PHONE], {}, set(), PSEUDO, {PHONE: 1})
    assert (res.record_id, res.create, res.links) == (again, (again, PHONE[1]), [PHONE])
    assert resolve([PHONE], {}, set(), PSEUDO).record_id == first


def test_a_staff_value_is_dated_when_made_names_who_and_outranks_older_channel_values_only():
    [birthday, city] = staff_values({"city": "Hangzhou", "birthday": "1990-02-01"}, by="li.wei", at_ms=2_000,
                                    correction_id="pf_1")
    assert (birthday.field, birthday.source, birthday.event_id, birthday.time_ms) == (
        "birthday", "staff/li.wei", "pf_1", 2_000)
    assert (staff_by(city.source), staff_by("pos/SH-001"), staff_by("web/shop")) == ("li.wei", None, None)
    older = FieldValue("birthday", "1990-01-02", 1_000, "pos/SH-001", "e1")
    newer = FieldValue("city", "Suzhou", 3_000, "web/shop", "e2")
    assert newest([older, birthday])["birthday"] is birthday
    assert newest([newer, city])["city"] is newer
    assert overruled_by_channels([birthday, city], {"birthday": older, "city": newer}) == ["city"]
    assert overruled_by_channels([birthday], {}) == []


def test_an_assigned_store_outranks_the_home_store_the_manager_store_and_the_complaint_store():
    days = [("S01", 3, "2026-11-03")]
    assert owning_store(days, complaint_store="S09", manager_store="S08", assigned_store="S02") == "S02"
    assert owning_store(days, complaint_store="S09", assigned_store=None) == "S01"
    assert owning_store([], assigned_store="S02") == "S02"
