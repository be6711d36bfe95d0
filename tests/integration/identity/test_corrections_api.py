"""Issue 14, identity's staff corrections through the HTTP API over every store backend: merge two customers
(undone by the unmerge route), change a phone (history kept, the old number no longer links), correct a
profile field (the ``staff`` source), assign a customer to a store or an account manager. Each with its
audit entry, its undo, bad input (422 naming the field), scope (404) and role (403).

No broker: ``publish`` is a list the test drains into the handler, as in test_api_on_every_store.py."""

from __future__ import annotations

from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from services.identity import messages
from services.identity.app import create_app
from shared.contract import topics
from shared.streaming.batch import Incoming
from tests.unit.identity.support import TickingClock, customer_of_phone, event, purchase, settings

ADMIN, OPERATOR, READER = "k-admin", "k-operator", "k-reader"
S1_OPERATOR, S2_OPERATOR, S2_READER = "k-s1-operator", "k-s2-operator", "k-s2-reader"
LI, WANG, NEW = "+8613800138000", "+8613900139000", "+8613700137000"


class Platform:
    """The identity service with a list for a broker: what the API publishes, the worker consumes."""

    def __init__(self, store) -> None:
        self.sent: list = []
        self.offset = 0
        s = settings(api_keys=f"{ADMIN}:admin,{OPERATOR}:operator,{READER}:reader,"
                              f"{S1_OPERATOR}:operator@store=SH-001,{S2_OPERATOR}:operator@store=SH-002,"
                              f"{S2_READER}:reader@store=SH-002",
                     pseudonym_secret="unit-test-key")
        self.service = create_app(s, store=store, publish=self.sent.extend, clock=TickingClock())
        self.http = TestClient(self.service.api)

    def call(self, method: str, url: str, key: str = OPERATOR, **kw):
        return self.http.request(method, url, headers={"Authorization": f"Bearer {key}"}, **kw)

    def ingest(self, *events: dict) -> None:
        """Post channel events and hand them to the resolve handler, as the worker would."""
        r = self.call("POST", "/v1/events", OPERATOR, json=list(events))
        assert r.status_code == 202, r.text
        channel = [o for o in self.sent if ".channel." in o.topic]
        self.sent[:] = [o for o in self.sent if ".channel." not in o.topic]
        batch = []
        for o in channel:
            batch.append(Incoming(o.value, o.topic, 0, self.offset, list(o.headers), o.key))
            self.offset += 1
        outcome = messages.consume(batch, deps=self.service.deps)
        self.service.relay(outcome.outbox)

    def view(self, customer_id: str, key: str = ADMIN) -> dict:
        r = self.call("GET", f"/v1/customers/{customer_id}", key, params={"reveal": "true"} if key == ADMIN else {})
        assert r.status_code == 200, r.text
        return r.json()

    def lookup(self, phone: str) -> int | str:
        r = self.call("GET", "/v1/customers/lookup", ADMIN, params={"phone": phone})
        return r.json()["customer_id"] if r.status_code == 200 else r.status_code

    def audit(self, action: str) -> list[dict]:
        r = self.call("GET", "/v1/audit", ADMIN, params={"action": action})
        assert r.status_code == 200, r.text
        return r.json()["items"]

    def published(self, topic: str) -> list:
        return [o for o in self.sent if o.topic == topic]


@pytest.fixture
def platform(store) -> Platform:
    return Platform(store)


def _two_phone_customers(platform: Platform) -> tuple[str, str]:
    platform.ingest(purchase("p1", {"phone": LI}, "100.00", time="2026-05-02T10:00:00+08:00"),
                    purchase("p2", {"phone": WANG}, "40.00", time="2026-05-03T10:00:00+08:00"))
    return customer_of_phone(LI), customer_of_phone(WANG)


def _detail_locs(r) -> list[str]:
    return [d["loc"] for d in r.json()["error"]["details"]]


# -- merge ----------------------------------------------------------------------------------------


def test_staff_merge_joins_two_phone_customers_audited_and_the_unmerge_route_undoes_it(platform):
    li, wang = _two_phone_customers(platform)
    # A WeChat follower carrying both phones is a conflict for review: never merged automatically.
    platform.ingest(event("w1", {"phone": LI, "wechat_openid": "oX-9"}, source="wechat/oa", kind="crm.follow"),
                    event("w2", {"phone": WANG, "wechat_openid": "oX-9"}, source="wechat/oa", kind="crm.follow"))
    [conflict] = platform.call("GET", "/v1/identity/conflicts", ADMIN).json()["items"]
    assert sorted(conflict["customer_ids"]) == sorted([li, wang])
    platform.sent.clear()

    r = platform.call("POST", f"/v1/customers/{li}/merge", OPERATOR,
                      json={"customer_id": wang, "conflict_id": conflict["conflict_id"],
                            "reason": "review: same person, card shown at the counter"})
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["survivor_id"], done["merged_id"], done["records"]) == (li, wang, [wang])
    assert platform.lookup(WANG) == li
    view = platform.view(li)
    assert view["merged_from"] == [wang]
    assert (view["stats"]["purchase_count"], view["stats"]["total_spend"]) == (2, "140.00")
    # Every downstream service learns it the normal way: CustomerMerged on its topic.
    [merged] = platform.published(topics.CUSTOMER_MERGED)
    assert merged.key == li.encode() and f'"merge_id":"{done["merge_id"]}"' in merged.value.decode()
    assert platform.call("GET", "/v1/identity/conflicts", ADMIN, params={"status": "resolved"}).json()[
        "items"][0]["conflict_id"] == conflict["conflict_id"]
    [entry] = platform.audit("identity.merge")
    assert (entry["role"], entry["scope"], entry["customer_id"], entry["target"], entry["reason"]) == (
        "operator", "company", li, done["merge_id"], "review: same person, card shown at the counter")
    merges = platform.call("GET", f"/v1/customers/{li}/merges", ADMIN).json()["items"]
    assert [(m["merge_id"], m["cause"]["kind"], m["cause"]["by"]) for m in merges] == [
        (done["merge_id"], "staff", entry["actor"])]

    r = platform.call("POST", f"/v1/customers/{li}/unmerge", OPERATOR, json={"merge_id": done["merge_id"]})
    assert r.status_code == 200, r.text
    assert (platform.lookup(LI), platform.lookup(WANG)) == (li, wang)
    assert (platform.view(li)["stats"]["total_spend"], platform.view(wang)["stats"]["total_spend"]) == (
        "100.00", "40.00")


def test_staff_merge_refuses_bad_input_one_customer_readers_and_customers_outside_the_scope(platform):
    li, wang = _two_phone_customers(platform)
    platform.ingest(purchase("p3", {"phone": NEW}, "10.00", store_id="SH-002"))
    other_store = customer_of_phone(NEW)
    url = f"/v1/customers/{li}/merge"
    r = platform.call("POST", url, OPERATOR, json={"customer_id": wang})
    assert r.status_code == 422 and _detail_locs(r) == ["body.reason"]
    r = platform.call("POST", url, OPERATOR, json={"customer_id": wang, "reason": "   "})
    assert r.status_code == 422 and _detail_locs(r) == ["body.reason"]
    r = platform.call("POST", url, OPERATOR, json={"reason": "same person"})
    assert r.status_code == 422 and _detail_locs(r) == ["body.customer_id"]
    assert platform.call("POST", url, READER, json={"customer_id": wang, "reason": "x"}).status_code == 403
    r = platform.call("POST", url, OPERATOR, json={"customer_id": li, "reason": "same person"})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "already_one_customer")
    # A store's operator sees neither another store's customer nor can merge one into its own.
    r = platform.call("POST", url, S1_OPERATOR, json={"customer_id": other_store, "reason": "same person"})
    assert (r.status_code, r.json()["error"]["code"]) == (404, "customer_not_found")
    r = platform.call("POST", f"/v1/customers/{other_store}/merge", S1_OPERATOR,
                      json={"customer_id": li, "reason": "same person"})
    assert r.status_code == 404
    r = platform.call("POST", url, OPERATOR, json={"customer_id": "c_nobody", "reason": "same person"})
    assert r.status_code == 404
    assert platform.audit("identity.merge") == []
    assert platform.lookup(WANG) == wang


# -- phone change ---------------------------------------------------------------------------------


def test_a_phone_change_keeps_the_old_number_in_the_history_and_it_no_longer_links(platform):
    li, _ = _two_phone_customers(platform)
    r = platform.call("PUT", f"/v1/customers/{li}/phone", OPERATOR,
                      json={"phone": "137-0013-7000", "reason": "customer changed numbers (ticket 88)"})
    assert r.status_code == 200, r.text
    change = r.json()
    assert (change["customer_id"], change["replaced"]) == (li, True)
    view = platform.view(li)
    assert view["phone"] == NEW
    [entry] = platform.audit("identity.phone.change")
    assert (entry["customer_id"], entry["target"], entry["reason"]) == (li, change["change_id"],
                                                                         "customer changed numbers (ticket 88)")
    # The identifier history, in the order first seen: the old number marked replaced (when, by whom), the new
    # one linked by staff.
    phones = [(i["value"], i["source"], i["event_id"], i["replaced_at"] is not None, i["replaced_by"])
              for i in view["identifiers"] if i["type"] == "phone"]
    assert phones == [(LI, "pos/SH-001", "p1", True, entry["actor"]),
                      (NEW, f"staff/{entry['actor']}", change["change_id"], False, None)]
    assert platform.lookup(NEW) == li and platform.lookup(LI) == 404
    # Masked below admin like any identifier.
    assert [i["value"] for i in platform.view(li, READER)["identifiers"] if i["type"] == "phone"] == [
        "138****8000", "137****7000"]
    assert "13800138000" not in str(entry) and "13700137000" not in str(entry)

    # The old number, now someone else's: their purchase makes a customer of its own, never reaches this one.
    platform.ingest(purchase("p9", {"phone": "138 0013 8000"}, "77.00", time="2026-06-05T10:00:00+08:00"))
    newcomer = platform.lookup(LI)
    assert newcomer not in (li, 404)
    assert platform.view(newcomer)["stats"]["total_spend"] == "77.00"
    assert platform.view(li)["stats"]["total_spend"] == "100.00"
    # And a purchase under the new number is this customer's.
    platform.ingest(purchase("p10", {"phone": NEW}, "5.00", time="2026-06-05T11:00:00+08:00"))
    assert platform.view(li)["stats"]["total_spend"] == "105.00"


def test_a_late_upload_from_before_a_phone_change_is_the_customer_who_held_the_number_then(platform):
    li, _ = _two_phone_customers(platform)
    # The change happens at the test clock's 2026-06-01T08:00Z.
    assert platform.call("PUT", f"/v1/customers/{li}/phone", OPERATOR,
                         json={"phone": NEW, "reason": "customer changed numbers"}).status_code == 200
    # A till uploads a purchase of 31 May late, under the old number: it was this customer's purchase.
    platform.ingest(purchase("late1", {"phone": LI, "member_id": "M-77"}, "30.00",
                             time="2026-05-31T20:00:00+08:00"))
    assert platform.view(li)["stats"]["total_spend"] == "130.00"
    assert platform.lookup(LI) == 404  # the old number still links nobody
    assert "M-77" in [i["value"] for i in platform.view(li)["identifiers"] if i["type"] == "member_id"]
    # The number's next holder buys after the change: a customer of their own.
    platform.ingest(purchase("p9", {"phone": LI}, "77.00", time="2026-06-05T10:00:00+08:00"))
    newcomer = platform.lookup(LI)
    assert newcomer not in (li, 404)
    # Another late upload from before the change still goes to the old holder, not to the number's holder now;
    # one from after the change (16:30 Shanghai is 08:30Z) is the newcomer's.
    platform.ingest(purchase("late2", {"phone": "138 0013 8000"}, "12.00", time="2026-06-01T15:59:00+08:00"),
                    purchase("late3", {"phone": LI}, "8.00", time="2026-06-01T16:30:00+08:00"))
    assert platform.view(li)["stats"]["total_spend"] == "142.00"
    assert platform.view(newcomer)["stats"]["total_spend"] == "85.00"


def test_a_phone_change_is_undone_by_changing_back_unless_the_old_number_went_to_someone_else(platform):
    li, _ = _two_phone_customers(platform)
    assert platform.call("PUT", f"/v1/customers/{li}/phone", OPERATOR,
                         json={"phone": NEW, "reason": "new number"}).status_code == 200
    r = platform.call("PUT", f"/v1/customers/{li}/phone", OPERATOR, json={"phone": LI, "reason": "typo, undo"})
    assert r.status_code == 200, r.text
    assert (platform.lookup(LI), platform.lookup(NEW)) == (li, 404)
    assert platform.view(li)["phone"] == LI
    assert len(platform.audit("identity.phone.change")) == 2

    assert platform.call("PUT", f"/v1/customers/{li}/phone", OPERATOR,
                         json={"phone": NEW, "reason": "new number again"}).status_code == 200
    platform.ingest(purchase("p9", {"phone": LI}, "77.00", time="2026-06-05T10:00:00+08:00"))
    r = platform.call("PUT", f"/v1/customers/{li}/phone", OPERATOR, json={"phone": LI, "reason": "undo"})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "phone_in_use")
    assert r.json()["error"]["details"] == {"customer_id": platform.lookup(LI)}


def test_a_phone_change_refuses_another_customers_number_bad_input_readers_and_other_stores(platform):
    li, wang = _two_phone_customers(platform)
    url = f"/v1/customers/{li}/phone"
    r = platform.call("PUT", url, OPERATOR, json={"phone": "139 0013 9000", "reason": "asked"})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "phone_in_use")
    assert r.json()["error"]["details"] == {"customer_id": wang}
    assert "139" not in r.json()["error"]["message"]
    # A store's operator learns that a number is somebody's even outside the store (unnamed): audited each time.
    platform.ingest(purchase("p3", {"phone": "+8613600136000"}, "10.00", store_id="SH-002",
                             time="2026-05-04T10:00:00+08:00"))
    r = platform.call("PUT", url, S1_OPERATOR, json={"phone": "136 0013 6000", "reason": "probing"})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "phone_in_use")
    assert r.json()["error"].get("details") is None  # the other store's customer is not named
    refused = platform.audit("identity.phone.change.refused")
    assert [(e["customer_id"], e["target"], e["reason"]) for e in refused] == [
        (li, "phone_in_use", "probing"), (li, "phone_in_use", "asked")]
    assert not any(n in str(refused) for n in ("13900139000", "139 0013 9000", "13600136000", "136 0013 6000"))
    r = platform.call("PUT", url, OPERATOR, json={"phone": LI, "reason": "asked"})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "phone_unchanged")
    r = platform.call("PUT", url, OPERATOR, json={"phone": "12345", "reason": "asked"})
    assert (r.status_code, r.json()["error"]["code"], _detail_locs(r)) == (422, "invalid_phone", ["body.phone"])
    r = platform.call("PUT", url, OPERATOR, json={"phone": NEW})
    assert r.status_code == 422 and _detail_locs(r) == ["body.reason"]
    assert platform.call("PUT", url, READER, json={"phone": NEW, "reason": "asked"}).status_code == 403
    r = platform.call("PUT", url, S2_OPERATOR, json={"phone": NEW, "reason": "asked"})
    assert (r.status_code, r.json()["error"]["code"]) == (404, "customer_not_found")
    assert platform.call("PUT", url, S1_OPERATOR, json={"phone": NEW, "reason": "asked"}).status_code == 200
    assert platform.lookup(NEW) == li


# -- profile correction ---------------------------------------------------------------------------


def test_a_staff_correction_outranks_channel_values_until_a_newer_channel_value_arrives(platform):
    platform.ingest(event("pr1", {"phone": LI}, kind="crm.profile", source="web/shop", time="2026-05-01T10:00:00+08:00",
                          name="Li Lei", birthday="1990-01-02", city="Shanghai"))
    li = customer_of_phone(LI)
    r = platform.call("PATCH", f"/v1/customers/{li}/profile", OPERATOR,
                      json={"birthday": "1990-02-01", "attributes": {"vip_note": "gold"},
                            "reason": "birthday typed day-first at signup; Li Lei showed ID"})
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["fields"] == ["attributes.vip_note", "birthday"]
    view = platform.view(li)
    assert (view["attributes"]["birthday"], view["attributes"]["city"], view["attributes"]["custom"]) == (
        "1990-02-01", "Shanghai", {"vip_note": "gold"})
    [entry] = platform.audit("identity.profile.correct")
    source = view["attribute_sources"]["birthday"]
    assert (source["channel"], source["source"], source["by"], source["event_id"]) == (
        "staff", f"staff/{entry['actor']}", entry["actor"], done["correction_id"])
    assert datetime.fromisoformat(source["time"]) == datetime.fromisoformat(done["at"])
    assert view["attribute_sources"]["city"]["channel"] == "web"
    assert (entry["customer_id"], entry["target"]) == (li, "attributes.vip_note,birthday")
    # The customer's name is masked in the reason as kept; no value of a field is in the entry. (The
    # values are searched whole: a bare "1990" can occur in the entry's random hexadecimal audit id.)
    assert "Li Lei" not in entry["reason"]
    assert not any(value in str(entry) for value in ("1990-01-02", "1990-02-01", "gold", "Shanghai"))

    # A till that was offline uploads an older profile: the correction holds.
    platform.ingest(event("pr2", {"phone": LI}, kind="crm.profile", source="pos/SH-001",
                          time="2026-05-20T10:00:00+08:00", birthday="1990-01-02"))
    assert platform.view(li)["attributes"]["birthday"] == "1990-02-01"
    # The customer edits the birthday on the member site after the correction: the newer channel value wins.
    platform.ingest(event("pr3", {"phone": LI}, kind="crm.profile", source="web/shop",
                          time="2026-06-10T10:00:00+08:00", birthday="1990-02-03"))
    view = platform.view(li)
    assert (view["attributes"]["birthday"], view["attribute_sources"]["birthday"]["channel"]) == (
        "1990-02-03", "web")
    assert view["attribute_sources"]["attributes.vip_note"]["channel"] == "staff"


def test_a_profile_correction_refuses_bad_fields_no_field_readers_other_stores_and_newer_channel_values(platform):
    platform.ingest(purchase("p1", {"phone": LI}, "10.00"))
    li = customer_of_phone(LI)
    url = f"/v1/customers/{li}/profile"
    r = platform.call("PATCH", url, OPERATOR, json={"birthday": "1990-02-31", "reason": "ID shown"})
    assert r.status_code == 422 and _detail_locs(r) == ["body.birthday"]
    r = platform.call("PATCH", url, OPERATOR, json={"email": "not-an-email", "reason": "ID shown"})
    assert r.status_code == 422 and _detail_locs(r) == ["body.email"]
    r = platform.call("PATCH", url, OPERATOR, json={"nickname": "Lei", "reason": "ID shown"})
    assert r.status_code == 422 and _detail_locs(r) == ["body.nickname"]
    r = platform.call("PATCH", url, OPERATOR, json={"reason": "ID shown"})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "no_fields")
    r = platform.call("PATCH", url, OPERATOR, json={"city": "Hangzhou"})
    assert r.status_code == 422 and _detail_locs(r) == ["body.reason"]
    assert platform.call("PATCH", url, READER, json={"city": "Hangzhou", "reason": "asked"}).status_code == 403
    assert platform.call("PATCH", url, S2_OPERATOR, json={"city": "Hangzhou", "reason": "asked"}).status_code == 404
    # A channel whose clock runs ahead reported a city dated after now: the correction would not show.
    platform.ingest(event("pr9", {"phone": LI}, kind="crm.profile", source="web/shop",
                          time="2027-01-01T10:00:00+08:00", city="Suzhou"))
    r = platform.call("PATCH", url, OPERATOR, json={"city": "Hangzhou", "reason": "asked"})
    assert (r.status_code, r.json()["error"]["code"], r.json()["error"]["details"]) == (
        409, "newer_channel_value", {"fields": ["city"]})
    assert platform.view(li)["attributes"]["city"] == "Suzhou"
    assert platform.audit("identity.profile.correct") == []


# -- store and account manager --------------------------------------------------------------------


def test_a_customer_transferred_to_another_store_is_seen_there_announced_and_given_back_by_null(platform):
    platform.ingest(purchase("p1", {"phone": LI}, "10.00"))
    li = customer_of_phone(LI)
    assert platform.view(li)["owner"] == {"store_id": "SH-001", "assigned": False, "assigned_by": None,
                                          "assigned_at": None}
    assert platform.call("GET", f"/v1/customers/{li}", S2_READER).status_code == 404
    platform.sent.clear()

    r = platform.call("PUT", f"/v1/customers/{li}/owner", OPERATOR,
                      json={"store_id": "SH-002", "reason": "moved to the Pudong counter"})
    assert r.status_code == 200, r.text
    owner = r.json()["owner"]
    assert (owner["store_id"], owner["assigned"]) == ("SH-002", True)
    assert platform.call("GET", f"/v1/customers/{li}", S2_READER).status_code == 200
    assert platform.call("GET", f"/v1/customers/{li}", S1_OPERATOR).status_code == 404
    [announced] = platform.published(topics.CUSTOMER_OWNERS)
    assert announced.key == li.encode() and '"store_id":"SH-002"' in announced.value.decode()
    # Purchases keep coming at the first store: the assignment holds.
    platform.ingest(purchase("p2", {"phone": LI}, "10.00", time="2026-05-09T10:00:00+08:00"))
    assert platform.view(li)["owner"]["store_id"] == "SH-002"
    [entry] = platform.audit("identity.owner.assign")
    assert (entry["customer_id"], entry["target"], entry["reason"]) == (li, "SH-002", "moved to the Pudong counter")
    assert owner["assigned_by"] == entry["actor"] and owner["assigned_at"] <= entry["at"]

    platform.sent.clear()
    r = platform.call("PUT", f"/v1/customers/{li}/owner", S2_OPERATOR, json={"store_id": None, "reason": "undo"})
    assert r.status_code == 200, r.text
    assert r.json()["owner"] == {"store_id": "SH-001", "assigned": False, "assigned_by": None, "assigned_at": None}
    assert [o.key for o in platform.published(topics.CUSTOMER_OWNERS)] == [li.encode()]
    assert len(platform.audit("identity.owner.unassign")) == 1


def test_a_store_assignment_refuses_bad_input_readers_other_stores_and_stores_outside_the_scope(platform):
    platform.ingest(purchase("p1", {"phone": LI}, "10.00"))
    li = customer_of_phone(LI)
    url = f"/v1/customers/{li}/owner"
    r = platform.call("PUT", url, OPERATOR, json={"reason": "moved"})
    assert r.status_code == 422 and _detail_locs(r) == ["body.store_id"]
    r = platform.call("PUT", url, OPERATOR, json={"store_id": "SH-002"})
    assert r.status_code == 422 and _detail_locs(r) == ["body.reason"]
    assert platform.call("PUT", url, READER, json={"store_id": "SH-002", "reason": "moved"}).status_code == 403
    assert platform.call("PUT", url, S2_OPERATOR, json={"store_id": "SH-002", "reason": "moved"}).status_code == 404
    # A store's operator may not hand its customer to a store its key does not see.
    r = platform.call("PUT", url, S1_OPERATOR, json={"store_id": "SH-002", "reason": "moved"})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "store_out_of_scope")
    assert platform.view(li)["owner"]["store_id"] == "SH-001"
    assert platform.audit("identity.owner.assign") == []


def test_an_account_manager_is_shown_in_the_view_audited_and_ended_by_null(platform):
    platform.ingest(purchase("p1", {"phone": LI}, "10.00"))
    li = customer_of_phone(LI)
    url = f"/v1/customers/{li}/account-manager"
    assert platform.view(li)["account_manager"] is None
    r = platform.call("PUT", url, S1_OPERATOR, json={"account_manager": "am-7", "reason": "key customer"})
    assert r.status_code == 200, r.text
    manager = platform.view(li, READER)["account_manager"]
    assert platform.view(li)["owner"]["store_id"] == "SH-001"  # a manager does not move the owning store
    [entry] = platform.audit("identity.manager.assign")
    assert (entry["customer_id"], entry["target"], entry["scope"]) == (li, "am-7", "store=SH-001")
    assert (manager["id"], manager["assigned_by"]) == ("am-7", entry["actor"]) and manager["assigned_at"] <= entry["at"]
    r = platform.call("PUT", url, OPERATOR, json={"account_manager": "am-9", "reason": "am-7 left"})
    assert r.json()["account_manager"]["id"] == "am-9"
    r = platform.call("PUT", url, OPERATOR, json={"account_manager": None, "reason": "no longer key"})
    assert r.status_code == 200 and r.json()["account_manager"] is None
    assert platform.view(li)["account_manager"] is None
    assert len(platform.audit("identity.manager.unassign")) == 1
    r = platform.call("PUT", url, OPERATOR, json={"account_manager": "", "reason": "x"})
    assert r.status_code == 422 and _detail_locs(r) == ["body.account_manager"]
    assert platform.call("PUT", url, READER, json={"account_manager": "am-7", "reason": "x"}).status_code == 403
    assert platform.call("PUT", url, S2_OPERATOR, json={"account_manager": "am-7", "reason": "x"}).status_code == 404


def test_the_merged_customers_assignment_comes_back_with_the_unmerge(platform):
    li, wang = _two_phone_customers(platform)
    assert platform.call("PUT", f"/v1/customers/{wang}/account-manager", OPERATOR,
                         json={"account_manager": "am-3", "reason": "key customer"}).status_code == 200
    done = platform.call("POST", f"/v1/customers/{li}/merge", OPERATOR,
                         json={"customer_id": wang, "reason": "same person"}).json()
    assert platform.view(li)["account_manager"] is None
    platform.call("POST", f"/v1/customers/{li}/unmerge", OPERATOR, json={"merge_id": done["merge_id"]})
    assert platform.view(wang)["account_manager"]["id"] == "am-3"


def test_the_customers_of_an_account_manager_are_listed_within_the_callers_scope(platform):
    li, wang = _two_phone_customers(platform)
    platform.ingest(purchase("p3", {"phone": NEW}, "10.00", store_id="SH-002"))
    other_store = customer_of_phone(NEW)
    for customer in (li, wang, other_store):
        assert platform.call("PUT", f"/v1/customers/{customer}/account-manager", OPERATOR,
                             json={"account_manager": "am-7", "reason": "key customer"}).status_code == 200
    platform.call("PUT", f"/v1/customers/{wang}/account-manager", OPERATOR,
                  json={"account_manager": "am-9", "reason": "moved to am-9"})

    def listed(key: str, **params) -> list[str]:
        r = platform.call("GET", "/v1/customers", key, params={"account_manager": "am-7", **params})
        assert r.status_code == 200, r.text
        return [c["customer_id"] for c in r.json()["items"]]

    assert listed(READER) == [other_store, li]  # newest assignment first
    assert listed(READER, limit=1, offset=1) == [li]
    assert listed(S2_READER) == [other_store]
    page = platform.call("GET", "/v1/customers", READER, params={"account_manager": "am-9"}).json()
    assert ([c["customer_id"] for c in page["items"]], page["items"][0]["phone"]) == ([wang], "139****9000")
    # A customer merged away is listed no more (its assignment waits for an unmerge).
    platform.call("POST", f"/v1/customers/{wang}/merge", OPERATOR, json={"customer_id": li, "reason": "same"})
    assert listed(READER) == [other_store]
    r = platform.call("GET", "/v1/customers", READER)
    assert r.status_code == 422 and _detail_locs(r) == ["query.account_manager"]


def test_an_erasure_after_a_phone_change_drops_a_replay_of_the_old_numbers_events_too(platform):
    li, _ = _two_phone_customers(platform)
    assert platform.call("PUT", f"/v1/customers/{li}/phone", OPERATOR,
                         json={"phone": NEW, "reason": "new number"}).status_code == 200
    r = platform.call("POST", f"/v1/customers/{li}/erasure", ADMIN, json={"reason": "the customer asked"})
    assert r.status_code == 202, r.text
    # The old purchase replayed (and the new number's): the person does not come back under either number.
    platform.ingest(purchase("p1", {"phone": LI}, "100.00", time="2026-05-02T10:00:00+08:00"),
                    purchase("p7", {"phone": NEW}, "1.00", time="2026-05-04T10:00:00+08:00"))
    assert (platform.lookup(LI), platform.lookup(NEW)) == (404, 404)
    assert platform.call("GET", f"/v1/customers/{li}", ADMIN).status_code == 404


def test_after_the_old_holders_erasure_their_events_from_before_the_phone_change_are_dropped_not_the_newcomers(
        platform):
    li, _ = _two_phone_customers(platform)
    assert platform.call("PUT", f"/v1/customers/{li}/phone", OPERATOR,
                         json={"phone": NEW, "reason": "new number"}).status_code == 200
    platform.ingest(purchase("p9", {"phone": LI}, "77.00", time="2026-06-05T10:00:00+08:00"))
    newcomer = platform.lookup(LI)
    assert newcomer not in (li, 404)
    r = platform.call("POST", f"/v1/customers/{li}/erasure", ADMIN, json={"reason": "the customer asked"})
    assert r.status_code == 202, r.text
    # The erased person's purchase replayed, and a till's late upload of theirs, both from before the change:
    # they were the erased person's, never the newcomer's.
    platform.ingest(purchase("p1", {"phone": LI}, "100.00", time="2026-05-02T10:00:00+08:00"),
                    purchase("late1", {"phone": LI, "member_id": "M-77"}, "30.00", time="2026-05-31T20:00:00+08:00"))
    assert platform.lookup(LI) == newcomer
    seen = platform.view(newcomer)
    assert seen["stats"]["total_spend"] == "77.00"
    assert "M-77" not in [i["value"] for i in seen["identifiers"]]
    assert platform.call("GET", f"/v1/customers/{li}", ADMIN).status_code == 404


def test_a_number_given_up_by_its_second_holder_after_the_first_holders_erasure_makes_a_third_customer(platform):
    li, _ = _two_phone_customers(platform)
    assert platform.call("PUT", f"/v1/customers/{li}/phone", OPERATOR,
                         json={"phone": NEW, "reason": "new number"}).status_code == 200
    platform.ingest(purchase("p9", {"phone": LI}, "77.00", time="2026-06-05T10:00:00+08:00"))
    newcomer = platform.lookup(LI)
    r = platform.call("POST", f"/v1/customers/{li}/erasure", ADMIN, json={"reason": "the customer asked"})
    assert r.status_code == 202, r.text
    assert platform.call("PUT", f"/v1/customers/{newcomer}/phone", OPERATOR,
                         json={"phone": "+8613600136000", "reason": "new number"}).status_code == 200
    # The number's third holder buys (after every change): a customer of their own, not the second holder.
    platform.ingest(purchase("p10", {"phone": LI}, "5.00", time="2026-06-20T10:00:00+08:00"))
    third = platform.lookup(LI)
    assert third not in (404, li, newcomer)
    assert platform.view(newcomer)["stats"]["total_spend"] == "77.00"
    assert platform.view(third)["stats"]["total_spend"] == "5.00"
