"""Issue 12, scoped access: a key scoped to store S01 gets, on every customer route of every service, exactly
the answer an unknown id gets for a customer owned by S02, and sees only S01's rows in every list, while a
company-wide key sees both. The routes are read from each service's OpenAPI document, so a new route that
takes a customer (or one of a customer's objects) fails here until it is given a scope decision."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shared.access.scope import Scope
from shared.access.staff import StaffAccount, add_account, hash_password
from shared.settings import Settings
from tests.integration.flows.support import (
    ADMIN,
    OPERATOR,
    READER,
    Flow,
    at,
    event,
    new_id,
    new_phone,
    purchase,
    running_flow,
)

pytestmark = pytest.mark.broker

S01_KEY, S02_KEY = "scope-s01-operator", "scope-s02-reader"
S01_ADMIN = "scope-s01-admin"
S01_STAFF, S01_PASSWORD = "li.wei", "s01-counter-password"
# Admin-only customer routes, called with S01's admin key (an operator gets 403 before scope is looked at).
# Their answers for the key's own customer are checked in tests/integration/flows/test_erasure_flow.py.
ADMIN_ONLY = {"/v1/customers/{customer_id}/erasure", "/v1/customers/{customer_id}/export",
              "/v1/loyalty/approvals/{approval_id}/approve", "/v1/loyalty/approvals/{approval_id}/reject"}
SERVICES = ("identity", "loyalty", "alerts", "campaigns")
# A customer id, alert, redemption and conflict nobody has: what every route answers for an unknown object.
UNKNOWN = {"customer_id": "c_" + "0" * 26, "alert_id": "al_unknown", "redemption_id": "r_unknown",
           "conflict_id": "x_unknown", "letter_id": "999999", "approval_id": "apr_unknown",
           "purpose": "sms"}  # a consent's purpose names no object: a valid one, so the answer is about the customer
CAMPAIGN = {"name": "Both stores", "objective": "promotion", "channel": "sms",
            "audience": {"home_stores": ["S01", "S02"]}, "offer": {"text": "tea on us"},
            "starts_at": "2026-11-20T00:00:00+08:00", "ends_at": "2026-11-30T00:00:00+08:00",
            "control_share": "0.5", "attribution_window_days": 14}
# How to call the POST routes on an object (a valid body, so the answer is the route's own, not a 422).
BODIES: dict[str, dict[str, Any]] = {
    "/v1/customers/{customer_id}/unmerge": {"merge_id": "m_nothing"},
    "/v1/loyalty/accounts/{customer_id}/redemptions": {"reward_id": "REWARD", "quantity": 1},
    "/v1/loyalty/accounts/{customer_id}/adjustments": {"points": 10, "reason": "goodwill"},
    "/v1/loyalty/accounts/{customer_id}/tier-override": {"tier": "A", "until": "2027-12-31", "reason": "courtesy"},
    "/v1/loyalty/accounts/{customer_id}/tier-override/lift": {"reason": "done"},
    "/v1/loyalty/redemptions/{redemption_id}/cancel": {"reason": "asked by the member"},
    "/v1/alerts/{alert_id}/ack": {"note": "seen"},
    "/v1/alerts/{alert_id}/resolve": {"note": "called back"},
    "/v1/identity/conflicts/{conflict_id}": {"status": "dismissed", "note": "two people"},
    "/v1/campaigns": CAMPAIGN,
    "/v1/campaigns/{campaign_id}": {"name": "renamed"},
    "/v1/analyses/event-effect": {"event_date": "2026-11-10", "attendees": ["c_1"], "non_attendees": ["c_2"]},
    # Issue 14, staff corrections.
    "/v1/customers/{customer_id}/merge": {"customer_id": UNKNOWN["customer_id"], "reason": "review"},
    "/v1/customers/{customer_id}/phone": {"phone": "+8613912345678", "reason": "new number"},
    "/v1/customers/{customer_id}/profile": {"city": "Hangzhou", "reason": "ID shown"},
    "/v1/customers/{customer_id}/owner": {"store_id": "S01", "reason": "moved"},
    "/v1/customers/{customer_id}/account-manager": {"account_manager": "am-1", "reason": "key customer"},
    "/v1/customers/{customer_id}/consents/{purpose}": {"granted": True, "reason": "said so at the counter"},
}
# The routes that take no customer: every one is named here with why, so a new route needs a decision.
NOT_A_CUSTOMER = {
    "/v1/identity/summary": "counts over the caller's scope (test_scope_gaps.py)", "/v1/stores": "master data",
    "/v1/auth/token": "sign-in",
    "/v1/auth/sign-out": "signs out the caller's own token (tests/integration/test_access_http.py)",
    "/v1/auth/revocations": "signed-out token ids, company-wide admins (tests/integration/test_access_http.py)",
    "/v1/audit": "admin, company-wide (403 forbidden_scope to a scoped admin)",
    "/v1/erasures/{erasure_id}": "an erasure's progress, admin, company-wide (403 forbidden_scope to a scoped "
                                 "admin, any id: test_rev12_unmerge_erasure_scope.py)",
    "/v1/loyalty/tiers": "rules", "/v1/loyalty/rules": "rules", "/v1/loyalty/rewards": "catalogue",
    "/v1/loyalty/rewards/{reward_id}": "catalogue",
    "/v1/alerts/rules": "rules", "/v1/alerts/churn-model": "model parameters",
    "/v1/campaigns": "the list of campaigns", "/v1/campaigns/{campaign_id}": "a campaign's definition",
    # Issue 14: webhook subscriptions, admin and company-wide (403 forbidden_scope to a scoped admin).
    **{f"/v1/webhooks{p}": "webhook subscriptions" for p in (
        "", "/event-types", "/{webhook_id}", "/{webhook_id}/deliveries",
        "/{webhook_id}/deliveries/{delivery_id}/redeliver")},
    # Issue 14: member imports span every store (403 forbidden_scope to a scoped admin, like the audit log).
    "/v1/imports": "an import job, admin, company-wide", "/v1/imports/{import_id}": "an import job's progress",
    # Issue 15: figures per store, region or company, no customer listed (403 forbidden_scope for another
    # store's: tests/integration/alerts/reports/test_satisfaction.py).
    "/v1/reports/satisfaction": "survey figures per store", "/v1/reports/churn-reasons": "reason counts per store",
    # Issue 15, kpi: a store's, region's or the company's figures (403 outside the key's scope:
    # tests/integration/alerts/reports/test_kpi.py).
    "/v1/reports/stores/{store_id}": "store KPIs", "/v1/reports/regions/{region}": "region KPIs",
    "/v1/reports/company": "company KPIs",
}
# Lists, and figures over customers (a store-scoped key reads a campaign's results over its own store's members:
# tests/integration/flows/test_scope_gaps.py).
LISTS = {"/v1/customers", "/v1/identity/conflicts", "/v1/alerts", "/v1/alerts/churn-model/customers",
         "/v1/campaigns/{campaign_id}/audience", "/v1/deadletters", "/v1/deadletters/{letter_id}/redrive",
         "/v1/campaigns/{campaign_id}/results", "/v1/campaigns/{campaign_id}/results.csv",
         "/v1/campaigns/{campaign_id}/daily.csv", "/v1/loyalty/approvals",
         # Issue 15: a store's sheet, 403 forbidden_scope for another store's (test_attendance.py)
         "/v1/reports/attendance",
         "/v1/reports/customer-value",  # issue 15: over the customers the key sees (its tests: reports/)
         # Issue 16: customers by name, only those the key sees (tests/integration/identity/test_search_by_name_api.py)
         "/v1/customers/search"}
# Defining, launching and previewing a campaign need a company-wide key or a region-scoped one (for campaigns
# confined to its region: tests/integration/flows/test_scope_region_campaigns.py); the event-effect analysis,
# ingestion (a scoped key could otherwise post purchases that move another store's customer into its scope) and
# the alerts scan (over every store's customers) stay company-wide: 403 for a store-scoped key. (The rewards
# catalogue's writes too, admin: tests/integration/flows/test_scope_gaps.py.)
COMPANY_ONLY = {("POST", "/v1/campaigns/{campaign_id}/" + m) for m in (
    "launch", "schedule", "unschedule", "pause", "resume", "complete", "cancel")} | {
    ("GET", "/v1/campaigns/{campaign_id}/preview"), ("POST", "/v1/alerts/scan"),
    ("POST", "/v1/analyses/event-effect"), ("POST", "/v1/campaigns"), ("PATCH", "/v1/campaigns/{campaign_id}"),
    ("POST", "/v1/events"),
    ("GET", "/v1/reports/clv-model")}  # issue 15, clv: the model is the whole customer base's


@pytest.fixture
def flow(broker, tmp_path) -> Iterator[Flow]:
    """The four services, with a key scoped to store S01 (operator) and one to S02 (reader) beside the
    company-wide keys."""
    settings = Settings(_env_file=None, kafka_bootstrap=broker, data_dir=str(tmp_path),
                        api_keys=f"{ADMIN}:admin,{OPERATOR}:operator,{READER}:reader,"
                                 f"{S01_KEY}:operator@store=S01,{S02_KEY}:reader@store=S02,"
                                 f"{S01_ADMIN}:admin@store=S01",
                        pseudonym_secret="scope-test-secret-0123456789", staff_file=str(tmp_path / "staff.json"),
                        token_secret="scope-test-token-secret-0123456789")
    # A staff account at S01, the same role as S01's key: its signed-in token must see exactly what the key sees.
    add_account(tmp_path / "staff.json", StaffAccount(S01_STAFF, hash_password(S01_PASSWORD), "operator",
                                                      Scope("store", "S01")))
    with running_flow(settings) as flow:
        yield flow


class Scenario:
    """Two customers at S01 and two at S02, each with a complaint (an alert), a redemption, and a phone
    conflict within each store; a company-wide campaign over both stores, launched."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        flow.set_clocks(at("2026-11-20T12:00"))
        self.phones = {name: new_phone() for name in ("a", "a2", "b", "b2")}
        store = {"a": "S01", "a2": "S01", "b": "S02", "b2": "S02"}
        opens = {"a": new_id("oA"), "b": new_id("oB")}
        bought = [e for n, p in self.phones.items() for e in (
            event("crm.consent", at("2026-11-01T09:00"), {"phone": p}, purpose="sms", granted=True),
            purchase({"phone": p}, at("2026-11-02T10:00"), "900.00", store=store[n]),
            purchase({"phone": p}, at("2026-11-03T10:00"), "100.00", store=store[n]))]
        # Customers of a third store, so that the churn model fits (checked: it converges on this history).
        bought += [purchase({"phone": p}, at(f"{day.isoformat()}T10:00"), "30.00", store="S03")
                   for p, days in churn_history() for day in days]
        flow.ingest(*bought, *(event("crm.follow", at("2026-11-04T09:00"),
                                     {"phone": self.phones[n], "wechat_openid": o}, source="wechat/oa")
                               for n, o in opens.items()))
        self.ids = {n: flow.customer_id(phone=p) for n, p in self.phones.items()}
        # The same WeChat id with the other phone of the store: a conflict between two phone customers.
        flow.ingest(*(event("crm.follow", at("2026-11-05T09:00"), {"phone": self.phones[n + "2"], "wechat_openid": o},
                            source="wechat/oa") for n, o in opens.items()),
                    *(event("crm.complaint", at("2026-11-19T11:00"), {"phone": self.phones[n]}, source="wechat/oa",
                            text="cold soup", store_id=store[n], severity="high") for n in ("a", "b")))
        admin = flow.platform["loyalty"].api(ADMIN)
        r = admin.post("/v1/loyalty/rewards", json={"name": "Tea", "points_cost": 10, "stock": 100})
        assert r.status_code == 201, r.text
        self.reward = r.json()["reward_id"]
        self.redemptions = {}
        for n in ("a", "b"):
            r = admin.post(f"/v1/loyalty/accounts/{self.ids[n]}/redemptions", json={"reward_id": self.reward})
            assert r.status_code == 201, r.text
            self.redemptions[n] = r.json()["redemption_id"]
        # Issue 14: an adjustment above the approval threshold, pending for each store's customer.
        self.approvals = {}
        for n in ("a", "b"):
            r = admin.post(f"/v1/loyalty/accounts/{self.ids[n]}/adjustments",
                           json={"points": 5000, "reason": "till outage"})
            assert r.status_code == 202, r.text
            self.approvals[n] = r.json()["approval_id"]
        flow.platform.settle()
        self.alerts = {n: flow.open_alerts(self.ids[n])["complaint"]["alert_id"] for n in ("a", "b")}
        conflicts = flow.identity.get("/v1/identity/conflicts").json()["items"]
        self.conflicts = {n: next(c["conflict_id"] for c in conflicts if self.ids[n] in c["customer_ids"])
                          for n in ("a", "b")}
        r = flow.campaigns.post("/v1/campaigns", json=CAMPAIGN)
        assert r.status_code == 201, r.text
        self.campaign = r.json()["campaign_id"]
        assert flow.campaigns.post(f"/v1/campaigns/{self.campaign}/launch").status_code == 200
        flow.platform.settle()

    def objects(self, who: str) -> dict[str, str]:
        """The path parameters that name ``who``'s customer and objects."""
        return {"customer_id": self.ids[who], "alert_id": self.alerts[who], "redemption_id": self.redemptions[who],
                "conflict_id": self.conflicts[who], "campaign_id": self.campaign, "month": "2026-11",
                "approval_id": self.approvals[who]}


def churn_history() -> list[tuple[str, list[date]]]:
    """Twenty customers' purchase days over 2026, drawn once from a fixed seed."""
    draw, out = random.Random(5), []
    for _ in range(20):
        k = draw.choice([1, 1, 1, 2, 2, 3, 5])
        out.append((new_phone(), sorted({date(2026, 1, 1) + timedelta(days=draw.randrange(300)) for _ in range(k)})))
    return out


def _routes(app_api: TestClient) -> list[tuple[str, str]]:
    paths = app_api.get("/openapi.json").json()["paths"]
    return sorted((method.upper(), path) for path, ops in paths.items() for method in ops)


def _fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), UNKNOWN.get(m.group(1), "x")), path)


def _call(client: TestClient, method: str, path: str, values: dict[str, str], body: Any) -> Any:
    return client.request(method, _fill(path, values), json=body if method != "GET" else None)


@pytest.fixture(params=["key", "token"])
def s01(request, flow: Flow) -> str:
    """S01's operator credential: its API key, or the token its staff account signs in for."""
    if request.param == "key":
        return S01_KEY
    r = flow.platform["identity"].api(READER).post("/v1/auth/token",
                                                    data={"username": S01_STAFF, "password": S01_PASSWORD})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def test_a_store_scoped_key_gets_404_for_another_stores_customer_on_every_route_and_only_its_rows(flow: Flow,
                                                                                                   s01: str):
    world = Scenario(flow)
    seen_routes = set()
    for name in SERVICES:
        service = flow.platform[name]
        scoped, company = service.api(s01), service.api(READER)
        for method, path in _routes(scoped):
            seen_routes.add(path)
            body = {k: (world.reward if v == "REWARD" else v) for k, v in BODIES.get(path, {}).items()} or None
            objects = set(re.findall(r"\{(\w+)\}", path)) & {"customer_id", "alert_id", "redemption_id",
                                                              "conflict_id", "approval_id"}
            if (method, path) in COMPANY_ONLY:
                r = _call(scoped, method, path, world.objects("a"), body)
                assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_scope", (path, r.text)
            elif path in ADMIN_ONLY:
                body = {"reason": "ticket 42"} if method == "POST" else None
                unknown = _call(service.api(S01_ADMIN), method, path, UNKNOWN, body)
                other = _call(service.api(S01_ADMIN), method, path, world.objects("b"), body)
                assert unknown.status_code == 404, (method, path, unknown.text)
                assert (other.status_code, other.json()) == (404, unknown.json()), (method, path)
            elif objects:
                unknown = _call(scoped, method, path, UNKNOWN | {"month": "2026-11"}, body)
                other = _call(scoped, method, path, world.objects("b"), body)
                assert unknown.status_code == 404, (method, path, unknown.text)
                assert (other.status_code, other.json()) == (404, unknown.json()), (method, path)
                if method == "GET":
                    # The same route, the same id, for a company-wide key: the customer is there.
                    assert _call(company, method, path, world.objects("b"), None).status_code == 200, path
                    assert _call(scoped, method, path, world.objects("a"), None).status_code == 200, path
            else:
                assert path in NOT_A_CUSTOMER or path in LISTS or path.startswith("/v1/customers/lookup"), (
                    f"{method} {path} takes no customer id and has no scope decision here")

    assert {"/v1/customers/{customer_id}", "/v1/loyalty/accounts/{customer_id}/ledger",
            "/v1/alerts/{alert_id}", "/v1/campaigns/{campaign_id}/audience"} <= seen_routes
    # The audit log spans every store: a store's own admin may not read it, a company-wide admin may.
    identity = flow.platform["identity"]
    r = identity.api(S01_ADMIN).get("/v1/audit")
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden_scope")
    assert identity.api(ADMIN).get("/v1/audit").status_code == 200


def test_lists_and_lookups_show_a_store_scoped_key_only_its_stores_customers(flow: Flow, s01: str):
    world = Scenario(flow)
    a, a2, b, b2 = (world.ids[n] for n in ("a", "a2", "b", "b2"))
    identity_s01, identity_all = flow.platform["identity"].api(s01), flow.platform["identity"].api(READER)

    # Lookup by phone: another store's customer answers as a phone nobody has.
    assert identity_s01.get("/v1/customers/lookup", params={"phone": world.phones["a"]}).json()["customer_id"] == a
    nobody = identity_s01.get("/v1/customers/lookup", params={"phone": new_phone()})
    other = identity_s01.get("/v1/customers/lookup", params={"phone": world.phones["b"]})
    assert nobody.status_code == other.status_code == 404 and other.json() == nobody.json()
    assert identity_all.get("/v1/customers/lookup", params={"phone": world.phones["b"]}).json()["customer_id"] == b

    def conflicts(api: TestClient) -> list[list[str]]:
        return sorted(c["customer_ids"] for c in api.get("/v1/identity/conflicts").json()["items"])

    assert conflicts(identity_s01) == [sorted([a, a2])]
    assert conflicts(identity_all) == sorted([sorted([a, a2]), sorted([b, b2])])

    alerts_s01, alerts_all = flow.platform["alerts"].api(s01), flow.platform["alerts"].api(READER)
    page = alerts_s01.get("/v1/alerts", params={"limit": 1}).json()
    assert ([x["customer_id"] for x in page["items"]], page["total"]) == ([a], 1)
    assert sorted(x["customer_id"] for x in alerts_all.get("/v1/alerts").json()["items"]) == sorted([a, b])
    assert alerts_s01.get("/v1/alerts", params={"customer_id": b}).json()["items"] == []
    assert flow.platform["alerts"].api(S02_KEY).get("/v1/alerts").json()["total"] == 1

    campaigns_s01 = flow.platform["campaigns"].api(s01)
    url = f"/v1/campaigns/{world.campaign}/audience"
    first = campaigns_s01.get(url, params={"limit": 1}).json()
    rest = campaigns_s01.get(url, params={"limit": 1, "cursor": first["next_cursor"]}).json()
    assert sorted(m["member_id"] for m in first["items"] + rest["items"]) == sorted([a, a2])
    assert (first["total"], rest["next_cursor"]) == (2, None)
    everyone = flow.campaigns.get(url, params={"limit": 100}).json()
    assert sorted(m["member_id"] for m in everyone["items"]) == sorted([a, a2, b, b2])

    for name in SERVICES:
        assert flow.platform[name].api(s01).get("/v1/deadletters").json() == {
            "items": [], "total": 0, "offset": 0, "limit": 50}


def test_a_merge_and_an_unmerge_move_the_owning_store_in_every_service(flow: Flow):
    flow.set_clocks(at("2026-11-20T12:00"))
    phone, openid = new_phone(), new_id("oX")
    # A WeChat follower who bought twice at S02, then binds a phone that bought once at S01: merged into
    # the phone's customer, whose home store becomes S02 (two purchase days against one).
    flow.ingest(purchase({"wechat_openid": openid}, at("2026-11-02T10:00"), "50.00", store="S02"),
                purchase({"wechat_openid": openid}, at("2026-11-03T10:00"), "50.00", store="S02"),
                purchase({"phone": phone}, at("2026-11-04T10:00"), "80.00", store="S01"))
    customer = flow.customer_id(phone=phone)
    s01, s02 = flow.platform["loyalty"].api(S01_KEY), flow.platform["loyalty"].api(S02_KEY)
    assert s01.get(f"/v1/loyalty/accounts/{customer}").status_code == 200
    assert s02.get(f"/v1/loyalty/accounts/{customer}").status_code == 404
    flow.ingest(event("crm.follow", at("2026-11-05T09:00"), {"phone": phone, "wechat_openid": openid},
                      source="wechat/oa"))
    assert flow.view(customer)["stats"]["home_store"] == "S02"
    for name, url in (("identity", f"/v1/customers/{customer}"), ("loyalty", f"/v1/loyalty/accounts/{customer}"),
                      ("alerts", f"/v1/alerts?customer_id={customer}")):
        assert flow.platform[name].api(S02_KEY).get(url).status_code == 200, name
    assert flow.platform["identity"].api(S01_KEY).get(f"/v1/customers/{customer}").status_code == 404
    assert s01.get(f"/v1/loyalty/accounts/{customer}").status_code == 404

    (merge,) = flow.identity.get(f"/v1/customers/{customer}/merges").json()["items"]
    r = flow.identity.post(f"/v1/customers/{customer}/unmerge", json={"merge_id": merge["merge_id"]})
    assert r.status_code == 200, r.text
    flow.platform.settle()
    assert s01.get(f"/v1/loyalty/accounts/{customer}").status_code == 200
    assert s02.get(f"/v1/loyalty/accounts/{customer}").status_code == 404
    assert flow.platform["identity"].api(S02_KEY).get(f"/v1/customers/{merge['merged_id']}").status_code == 200


def test_a_customer_who_only_complained_is_seen_by_the_complaint_stores_key_and_by_no_other(flow: Flow):
    # The alert goes to the complaint's store (alerts' routing), so that store must own the customer too.
    flow.set_clocks(at("2026-11-20T12:00"))
    phone = new_phone()
    flow.ingest(event("crm.complaint", at("2026-11-20T11:00"), {"phone": phone}, source="wechat/oa",
                      text="cold soup", store_id="S01", severity="high"))
    customer = flow.customer_id(phone=phone)
    complaint = flow.open_alerts(customer)["complaint"]
    assert complaint["store_id"] == "S01"
    identity, alerts = flow.platform["identity"], flow.platform["alerts"]
    assert identity.api(S01_KEY).get(f"/v1/customers/{customer}").json()["customer_id"] == customer
    page = alerts.api(S01_KEY).get("/v1/alerts", params={"customer_id": customer}).json()
    assert ([a["alert_id"] for a in page["items"]], page["total"]) == ([complaint["alert_id"]], 1)
    assert alerts.api(S01_KEY).get(f"/v1/alerts/{complaint['alert_id']}").status_code == 200

    unknown = identity.api(S02_KEY).get(f"/v1/customers/{UNKNOWN['customer_id']}")
    other = identity.api(S02_KEY).get(f"/v1/customers/{customer}")
    assert unknown.status_code == 404 and (other.status_code, other.json()) == (404, unknown.json())
    unknown_alert = alerts.api(S02_KEY).get(f"/v1/alerts/{UNKNOWN['alert_id']}")
    other_alert = alerts.api(S02_KEY).get(f"/v1/alerts/{complaint['alert_id']}")
    assert (other_alert.status_code, other_alert.json()) == (404, unknown_alert.json())
    assert alerts.api(S02_KEY).get("/v1/alerts", params={"customer_id": customer}).json()["total"] == 0
