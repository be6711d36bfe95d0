"""Issue 14: what identity announces of a staff correction, over every store backend. A profile correction, an
account manager assignment and a consent correction each go out once, through the outbox in the correction's
transaction, as the resolved customer event every service reads for a channel's profile or consent change:
source ``staff/<who>``, the correction's id and time. A refused correction announces nothing. Also the consent
correction route itself (audited, 422 naming the field, 403 for a reader, 404 outside the scope)."""

from __future__ import annotations

from datetime import datetime

from shared.contract import topics
from shared.contract.events import ConsentEvent, ProfileEvent
from shared.contract.facts import attribute_values
from shared.contract.messages import CustomerEventResolved, kind_headers, read
from tests.integration.identity.test_corrections_api import LI, OPERATOR, READER, S2_OPERATOR, Platform, _detail_locs
from tests.integration.identity.test_corrections_api import platform as platform  # noqa: F401 (the fixture)
from tests.unit.identity.support import customer_of_phone, event, purchase


def _staff_events(platform: Platform) -> list:
    """The resolved customer events identity sent from the staff source, read as every service reads them."""
    out = []
    for o in platform.sent:
        if o.topic.endswith(topics.CUSTOMER_EVENTS) and b'"source":"staff/' in o.value:
            got = read(o.value)
            assert isinstance(got.message, CustomerEventResolved) and o.key.decode() == got.message.customer_id
            # Issue 13: named for the services that pass over the types they do not take.
            assert o.headers[-2:] == kind_headers("customer.event", got.event.type)
            out.append(got)
    return out


def test_a_profile_correction_is_announced_once_as_a_staff_profile_event_and_a_refused_one_not_at_all(platform):
    platform.ingest(event("pr1", {"phone": LI}, kind="crm.profile", source="web/shop", time="2026-05-01T10:00:00+08:00",
                          birthday="1990-01-02"))
    li = customer_of_phone(LI)
    r = platform.call("PATCH", f"/v1/customers/{li}/profile", OPERATOR,
                      json={"birthday": "1990-02-01", "city": "Hangzhou", "attributes": {"vip_note": "gold"},
                            "reason": "ID shown"})
    assert r.status_code == 200, r.text
    done = r.json()
    [staff] = _staff_events(platform)
    [entry] = platform.audit("identity.profile.correct")
    e = staff.event
    assert isinstance(e, ProfileEvent)
    assert (staff.message.customer_id, staff.message.record_id) == (li, li)
    assert (e.source, e.id, e.time) == (f"staff/{entry['actor']}", done["correction_id"],
                                        datetime.fromisoformat(done["at"]))
    assert e.data.identity.phone == LI
    # Downstream reads exactly the values identity keeps, with the same source, id and time.
    view = platform.view(li)
    assert {v.field: v.value for v in attribute_values(e)} == {
        "birthday": "1990-02-01", "city": "Hangzhou", "attributes.vip_note": "gold"}
    assert {(v.source, v.event_id) for v in attribute_values(e)} == {
        (view["attribute_sources"]["birthday"]["source"], view["attribute_sources"]["birthday"]["event_id"])}

    platform.ingest(event("pr9", {"phone": LI}, kind="crm.profile", source="web/shop",
                          time="2027-01-01T10:00:00+08:00", city="Suzhou"))
    r = platform.call("PATCH", f"/v1/customers/{li}/profile", OPERATOR, json={"city": "Ningbo", "reason": "asked"})
    assert r.status_code == 409
    assert len(_staff_events(platform)) == 1


def test_an_account_manager_assignment_is_announced_and_its_end_gives_back_the_channels_manager(platform):
    platform.ingest(event("pr1", {"phone": LI}, kind="crm.profile", source="web/shop", time="2026-05-01T10:00:00+08:00",
                          attributes={"account_manager": "am-3"}))
    li = customer_of_phone(LI)
    url = f"/v1/customers/{li}/account-manager"
    assert platform.call("PUT", url, OPERATOR, json={"account_manager": "am-7", "reason": "key"}).status_code == 200
    assert platform.call("PUT", url, OPERATOR, json={"account_manager": None, "reason": "not key"}).status_code == 200
    assigned, ended = _staff_events(platform)
    assert [[(v.field, v.value) for v in attribute_values(s.event)] for s in (assigned, ended)] == [
        [("attributes.account_manager", "am-7")], [("attributes.account_manager", "am-3")]]
    assert assigned.event.id != ended.event.id and assigned.event.time < ended.event.time

    platform.ingest(purchase("p1", {"phone": "+8613900139000"}, "10.00"))
    other = customer_of_phone("+8613900139000")
    assert platform.call("PUT", f"/v1/customers/{other}/account-manager", OPERATOR,
                         json={"account_manager": None, "reason": "none"}).status_code == 200
    nobody = _staff_events(platform)[-1]
    assert [(v.field, v.value) for v in attribute_values(nobody.event)] == [("attributes.account_manager", None)]


def test_a_consent_correction_decides_until_a_newer_channel_consent_audited_and_announced(platform):
    platform.ingest(event("c1", {"phone": LI}, kind="crm.consent", source="wechat/oa", time="2026-05-01T10:00:00+08:00",
                          purpose="sms", granted=True))
    li = customer_of_phone(LI)
    r = platform.call("PUT", f"/v1/customers/{li}/consents/sms", OPERATOR,
                      json={"granted": False, "reason": "asked at the counter to get no more texts"})
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["customer_id"], done["purpose"], done["granted"]) == (li, "sms", False)
    consent = platform.view(li)["consents"]["sms"]
    [entry] = platform.audit("identity.consent.correct")
    assert (consent["granted"], consent["channel"], consent["event_id"]) == (False, "staff", done["correction_id"])
    assert (entry["customer_id"], entry["target"]) == (li, "consent.sms")
    [staff] = _staff_events(platform)
    assert isinstance(staff.event, ConsentEvent)
    assert (staff.event.source, staff.event.id, staff.event.data.purpose, staff.event.data.granted) == (
        f"staff/{entry['actor']}", done["correction_id"], "sms", False)

    # An older channel consent arriving late does not undo it; a newer one decides again.
    platform.ingest(event("c2", {"phone": LI}, kind="crm.consent", source="pos/SH-001",
                          time="2026-05-02T10:00:00+08:00", purpose="sms", granted=True))
    assert platform.view(li)["consents"]["sms"]["granted"] is False
    platform.ingest(event("c3", {"phone": LI}, kind="crm.consent", source="wechat/oa",
                          time="2027-06-01T10:00:00+08:00", purpose="sms", granted=True))
    assert platform.view(li)["consents"]["sms"]["granted"] is True


def test_a_consent_correction_refuses_bad_input_readers_and_customers_outside_the_scope(platform):
    platform.ingest(purchase("p1", {"phone": LI}, "10.00"))
    li = customer_of_phone(LI)
    url = f"/v1/customers/{li}/consents/sms"
    r = platform.call("PUT", f"/v1/customers/{li}/consents/fax", OPERATOR, json={"granted": True, "reason": "x"})
    assert r.status_code == 422 and _detail_locs(r) == ["path.purpose"]
    r = platform.call("PUT", url, OPERATOR, json={"granted": "yes", "reason": "x"})
    assert r.status_code == 422 and _detail_locs(r) == ["body.granted"]
    r = platform.call("PUT", url, OPERATOR, json={"granted": True, "reason": " "})
    assert r.status_code == 422 and _detail_locs(r) == ["body.reason"]
    assert platform.call("PUT", url, READER, json={"granted": True, "reason": "x"}).status_code == 403
    assert platform.call("PUT", url, S2_OPERATOR, json={"granted": True, "reason": "x"}).status_code == 404
    assert platform.call("PUT", "/v1/customers/c_nobody/consents/sms", OPERATOR,
                         json={"granted": True, "reason": "x"}).status_code == 404
    assert platform.audit("identity.consent.correct") == [] and _staff_events(platform) == []


def test_a_channel_cannot_send_an_event_from_the_staff_source(platform):
    r = platform.call("POST", "/v1/events", OPERATOR, json=[
        event("pr1", {"phone": LI}, kind="crm.profile", source="staff/ops-1", birthday="1990-02-01")])
    assert r.status_code == 422, r.text
    [result] = r.json()["results"]
    assert result["reasons"] == ["source: String should match pattern '^(pos|wechat|web)/[^\\s]+$'"]
    assert platform.lookup(LI) == 404
