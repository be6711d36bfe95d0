"""Issue 12, masking and audit, through the four services' HTTP APIs in process (real broker):

- every GET route of every service (taken from each app's OpenAPI, so a new route is covered without
  touching this test), called as a reader, an operator and an admin who does not ask to reveal, shows
  none of the person's phones (any notation, inside any field), name, birthday or e-mail in clear, in
  JSON or CSV;
- an admin's ``reveal=true`` shows them, anyone else gets 403, and every reveal is in the audit log;
- every write by a person (adjustment, redemption and its cancellation, unmerge, conflict decision, alert
  acknowledgement and resolution, campaign launch) is in ``GET /v1/audit``, which filters by person,
  customer, action and time, pages, and holds no personal data in clear.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient

from services.identity.store import ConflictRow
from shared.contract import topics
from tests.e2e.helpers import PersonalData
from tests.integration.flows.support import ADMIN, OPERATOR, READER, SHANGHAI, Flow, at, event, new_id, purchase

PHONE, OTHER_PHONE = "135 1234 0001", "138 0013 8000"
NAME, BIRTHDAY = "Wang Fang", "1985-03-12"
PHONE_MAIL, MAIL = "13512340001@163.com", "wang.fang@example.com"
SCAN = PersonalData(["13512340001", "13800138000"], dates=[BIRTHDAY], texts=[NAME, "wang.fang@", PHONE_MAIL])
OPENID = "oAudit-1"


def _person(flow: Flow, store: str) -> str:
    """A customer whose personal data is everywhere: profile, custom attributes, an extra identity key, a
    complaint, a survey comment, an extra payload field; merged with a WeChat follower."""
    # The phone's customer and the follower's exist apart first (they reach identity on two topics).
    flow.ingest(purchase({"phone": PHONE}, at("2026-11-01T10:00"), "300.00", store=store),
                event("crm.follow", at("2026-11-01T11:00"), {"wechat_openid": OPENID}, source="wechat/oa"))
    flow.ingest(
        event("crm.consent", at("2026-11-01T11:30"), {"phone": PHONE}, purpose="sms", granted=True),
        event("crm.profile", at("2026-11-01T12:00"), {"phone": "+86 135-1234-0001", "wechat_openid": OPENID,
                                                       "email": PHONE_MAIL, "mobile_backup": OTHER_PHONE},
              source="wechat/mini", name=NAME, birthday=BIRTHDAY, email=PHONE_MAIL, city="Shanghai",
              attributes={"note": f"prefers calls on {OTHER_PHONE}", "mail2": MAIL, "born": BIRTHDAY}),
        event("crm.complaint", at("2026-11-02T10:00"), {"phone": "0086 13512340001"}, store_id=store,
              severity="high", text=f"{NAME} says staff were rude; call 135.1234.0001 or {MAIL} ({BIRTHDAY})",
              contact="+86 135 1234 0001"),
        event("crm.survey", at("2026-11-02T11:00"), {"phone": PHONE}, score=2,
              comment=f"Never again. {NAME}, 13800138000"),
    )
    return flow.customer_id(phone=PHONE)


def _launch(flow: Flow, store: str) -> str:
    definition = {"name": "Winter", "objective": "promotion", "channel": "sms", "audience": {"home_stores": [store]},
                  "offer": {"text": "10% off"}, "starts_at": "2026-11-10T00:00:00+08:00",
                  "ends_at": "2026-11-30T00:00:00+08:00", "control_share": "0.5"}
    r = flow.campaigns.post("/v1/campaigns", json=definition)
    assert r.status_code == 201, r.text
    cid = r.json()["campaign_id"]
    r = flow.campaigns.post(f"/v1/campaigns/{cid}/launch", headers={"X-Reason": "winter plan"})
    assert r.status_code == 200 and r.json()["status"] == "running", r.text
    flow.platform.settle()
    return cid


def _path_values(customer: str, alert: str, campaign: str, reward: str) -> dict[str, str]:
    return {"customer_id": customer, "alert_id": alert, "campaign_id": campaign, "reward_id": reward,
            "month": "2026-11", "store_id": "SH-001", "redemption_id": "nobody", "erasure_id": "nobody"}


def _required_query(operation: dict[str, Any]) -> dict[str, str]:
    values = {"month": "2026-11", "as_of": "2026-11-20", "store_id": "SH-001"}
    return {p["name"]: values.get(p["name"], "x") for p in operation.get("parameters", [])
            if p.get("in") == "query" and p.get("required")}


# The export is the person's own copy of everything held of them (PIPL article 45): unmasked by design,
# admin only and audited; checked apart (tests/integration/flows/test_erasure_flow.py holds its content).
EXPORT = "/v1/customers/{customer_id}/export"


def _every_get(client: TestClient, app, values: dict[str, str]) -> dict[str, tuple[int, str]]:
    """Every GET route of ``app`` as its OpenAPI lists it, path parameters filled in: route -> (status, body)."""
    seen = {}
    for path, item in app.openapi()["paths"].items():
        if "get" not in item or not path.startswith("/v1") or path == EXPORT:
            continue
        url = re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "nobody"), path)
        r = client.get(url, params={"limit": 500, **_required_query(item["get"])}) if "cursor" in str(item) \
            else client.get(url, params=_required_query(item["get"]))
        seen[path] = (r.status_code, r.text)
    return seen


def test_no_get_route_of_any_service_shows_personal_data_in_clear_unless_an_admin_reveals_it(flow: Flow):
    flow.set_clocks(at("2026-11-10T09:00"))
    store = new_id("SH")
    customer = _person(flow, store)
    # A message identity cannot read, with a phone in it: kept as a dead letter with its raw bytes.
    flow.platform.send(topics.CHANNEL_POS, [b'{"id": "bad-1", "phone": "13512340001", "text": "' + NAME.encode()])
    flow.platform.settle()
    campaign = _launch(flow, store)
    alerts = flow.alerts(customer)
    assert {a["type"] for a in alerts} >= {"complaint", "survey_low"}
    admin = {n: s.api(ADMIN) for n, s in flow.platform.services.items()}
    r = admin["loyalty"].post("/v1/loyalty/rewards", json={"name": "Mug", "points_cost": 10, "stock": 5})
    reward = r.json()["reward_id"]
    values = _path_values(customer, alerts[0]["alert_id"], campaign, reward)

    must_answer = {"/v1/customers/{customer_id}", "/v1/customers/{customer_id}/timeline",
                   "/v1/loyalty/accounts/{customer_id}", "/v1/loyalty/accounts/{customer_id}/ledger",
                   "/v1/alerts", "/v1/alerts/{alert_id}", "/v1/campaigns/{campaign_id}/audience",
                   "/v1/campaigns/{campaign_id}/results.csv"}
    routes = 0
    for key in (READER, OPERATOR, ADMIN):
        for name, service in flow.platform.services.items():
            client = service.api(key)
            seen = _every_get(client, service.service.api, values)
            if name == "identity":
                for ident in ({"phone": "13512340001"}, {"email": PHONE_MAIL}, {"wechat_openid": OPENID}):
                    r = client.get("/v1/customers/lookup", params=ident)
                    seen[f"lookup {sorted(ident)}"] = (r.status_code, r.text)
                    assert r.status_code == 200 and r.json()["customer_id"] == customer, r.text
                r = client.get(f"/v1/customers/{customer}/timeline", params={"limit": 500})
                assert len(r.json()["items"]) == 6
            for route, (status, body) in seen.items():
                found = SCAN.search(body)
                assert found is None, f"{name} {route} as {key} ({status}) shows {found.group(0)!r}"
                if route in must_answer:
                    assert status == 200, (name, route, key, body)
            assert all(status < 500 for status, _ in seen.values()), (name, key)
            routes += len(seen)
            if key != ADMIN:
                r = client.get(EXPORT.replace("{customer_id}", customer))
                assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden"), (name, key, r.text)
    assert routes >= 3 * 35  # every service's reads (33 GET routes today, and lookups), three times

    view = flow.platform["identity"].api(READER).get(f"/v1/customers/{customer}").json()
    assert view["phone"] == "135****0001"
    assert (view["attributes"]["name"], view["attributes"]["birthday"], view["attributes"]["email"]) == (
        "W********", "****-03-**", "***@163.com")
    assert view["attributes"]["custom"] == {"note": "prefers calls on *******8000", "mail2": "w***@example.com",
                                            "born": "****-**-**"}
    complaint = next(e for e in flow.platform["identity"].api(READER).get(
        f"/v1/customers/{customer}/timeline").json()["items"] if e["type"] == "crm.complaint")["data"]
    # Free text: the person's own name, phones, e-mails and dates masked, then cut to 80 characters.
    assert complaint["text"] == "W******** says staff were rude; call *******0001 or w***@example.com (****-**-**…"
    assert complaint["contact"] == "*********0001" and complaint["store_id"] == store

    # Reveal: admins only, and every reveal is audited with the reason given.
    for key in (READER, OPERATOR):
        r = flow.platform["identity"].api(key).get(f"/v1/customers/{customer}", params={"reveal": "true"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "reveal_forbidden"
    shown = admin["identity"].get(f"/v1/customers/{customer}", params={"reveal": "true"},
                                  headers={"X-Reason": f"customer asked at the till, 135 1234 0001 {NAME[:0]}"}).json()
    assert (shown["phone"], shown["attributes"]["name"], shown["attributes"]["birthday"]) == (
        "+8613512340001", NAME, BIRTHDAY)
    timeline = admin["identity"].get(f"/v1/customers/{customer}/timeline", params={"reveal": "true"}).json()
    assert any(MAIL in (e["data"].get("text") or "") for e in timeline["items"])
    letters = admin["identity"].get("/v1/deadletters", params={"reveal": "true"}).json()["items"]
    assert any("13512340001" in (d["payload"] or "") for d in letters)
    assert all(d["payload"] is None for d in admin["identity"].get("/v1/deadletters").json()["items"])
    revealed = admin["alerts"].get("/v1/alerts", params={"customer_id": customer, "reveal": "true"})
    assert revealed.status_code == 200 and flow.platform["alerts"].api(READER).get(
        "/v1/alerts", params={"reveal": "true"}).status_code == 403
    flow.platform.settle()  # the alerts service's entries reach identity's log through its topic
    log = admin["identity"].get("/v1/audit", params={"action": "reveal.customer"}).json()["items"]
    assert [(e["action"], e["customer_id"], e["service"], e["role"]) for e in log] == [
        ("reveal.customer", customer, "identity", "admin")]
    assert log[0]["reason"] == "customer asked at the till, *******0001"
    actions = {e["action"] for e in admin["identity"].get("/v1/audit", params={"limit": 500}).json()["items"]}
    assert {"reveal.customer", "reveal.timeline", "reveal.deadletters", "reveal.alerts", "campaigns.launch"} <= actions
    alerts_log = admin["identity"].get("/v1/audit", params={"action": "reveal.alerts"}).json()["items"]
    assert [(e["service"], e["customer_id"]) for e in alerts_log] == [("alerts", customer)]


def test_every_write_by_a_person_is_in_the_audit_log_which_filters_pages_and_holds_no_personal_data(flow: Flow):
    flow.set_clocks(at("2026-11-10T09:00"))
    store = new_id("SH")
    customer = _person(flow, store)
    admin = {n: s.api(ADMIN) for n, s in flow.platform.services.items()}
    operator = {n: s.api(OPERATOR) for n, s in flow.platform.services.items()}
    why = {"X-Reason": f"asked by {NAME} on {PHONE}"}

    # Loyalty: an adjustment, a redemption and its cancellation.
    r = operator["loyalty"].post(f"/v1/loyalty/accounts/{customer}/adjustments", headers=why,
                                 json={"points": 50, "reason": f"goodwill, called {PHONE}"})
    assert r.status_code == 201, r.text
    reward = admin["loyalty"].post("/v1/loyalty/rewards", json={"name": "Mug", "points_cost": 10,
                                                                "stock": 5}).json()["reward_id"]
    r = operator["loyalty"].post(f"/v1/loyalty/accounts/{customer}/redemptions", json={"reward_id": reward},
                                 headers={"Idempotency-Key": "rd-1"})
    assert r.status_code == 201, r.text
    redemption = r.json()["redemption_id"]
    again = operator["loyalty"].post(f"/v1/loyalty/accounts/{customer}/redemptions", json={"reward_id": reward},
                                     headers={"Idempotency-Key": "rd-1"})
    assert again.headers.get("Idempotent-Replayed") == "true"  # a replay changed nothing: no second entry
    r = operator["loyalty"].post(f"/v1/loyalty/redemptions/{redemption}/cancel", json={"reason": "changed mind"})
    assert r.status_code == 200, r.text
    # Alerts: acknowledge and resolve the complaint.
    alert = next(a for a in flow.alerts(customer) if a["type"] == "complaint")["alert_id"]
    assert operator["alerts"].post(f"/v1/alerts/{alert}/ack", json={"note": "on it"}).status_code == 200
    assert operator["alerts"].post(f"/v1/alerts/{alert}/resolve",
                                   json={"note": f"called back on {PHONE}"}).status_code == 200
    # Campaigns: a launch.
    campaign = _launch(flow, store)
    # Identity: an unmerge and a conflict decision.
    merge = operator["identity"].get(f"/v1/customers/{customer}/merges").json()["items"][0]["merge_id"]
    assert operator["identity"].post(f"/v1/customers/{customer}/unmerge", json={"merge_id": merge}).status_code == 200
    identity_store = flow.platform["identity"].deps.store
    with identity_store.transaction():
        identity_store.add_conflict(ConflictRow("x_audit1", "phone_join", "phone", "p-1", (customer, "c_other"),
                                                "pos/SH-001", "e-1", "2026-11-02T00:00:00.000000Z", "open"))
    assert operator["identity"].post("/v1/identity/conflicts/x_audit1",
                                     json={"status": "dismissed", "note": "same family"}).status_code == 204
    # A dead letter sent back to its topic (it fails again, and is kept once).
    flow.platform.send(topics.CHANNEL_POS, [b'{"id": "bad-2", "phone": "13512340001"'])
    flow.platform.settle()
    [letter] = operator["identity"].get("/v1/deadletters").json()["items"]
    assert operator["identity"].post(f"/v1/deadletters/{letter['id']}/redrive").status_code == 200
    flow.platform.settle()

    everything = admin["identity"].get("/v1/audit", params={"limit": 500}).json()["items"]
    writes = [(e["service"], e["action"], e["customer_id"], e["target"]) for e in everything]
    assert sorted(writes) == sorted([
        ("loyalty", "loyalty.adjustment", customer, r_adjustment_target(everything)),
        ("loyalty", "loyalty.redemption", customer, redemption),
        ("loyalty", "loyalty.redemption_cancel", customer, redemption),
        ("alerts", "alerts.ack", customer, alert),
        ("alerts", "alerts.resolve", customer, alert),
        ("campaigns", "campaigns.launch", None, campaign),
        ("identity", "identity.unmerge", customer, merge),
        ("identity", "identity.conflict.dismissed", None, "x_audit1"),
        ("identity", "deadletters.redrive", None, str(letter["id"])),
    ])
    assert {e["role"] for e in everything} == {"operator"} and {e["scope"] for e in everything} == {"company"}
    assert SCAN.search(str(everything)) is None and "Wang" not in str(everything)
    adjustment = next(e for e in everything if e["action"] == "loyalty.adjustment")
    # Reasons: the X-Reason header, else the reason or note the route takes; the customer's own name masked
    # by identity, which knows it, though loyalty wrote the entry.
    assert adjustment["reason"] == "asked by W******** on *******0001"
    assert next(e for e in everything if e["action"] == "alerts.resolve")["reason"] == "called back on *******0001"
    assert OPERATOR not in str(everything) and ADMIN not in str(everything)  # who, never the key itself

    def ids(**params: str) -> list[str]:
        r = admin["identity"].get("/v1/audit", params={"limit": 500, **params})
        assert r.status_code == 200, r.text
        return [e["audit_id"] for e in r.json()["items"]]

    actor = adjustment["actor"]
    assert ids(actor=actor) == [e["audit_id"] for e in everything]
    assert ids(actor="somebody-else") == []
    assert ids(customer_id=customer) == [e["audit_id"] for e in everything if e["customer_id"] == customer]
    assert ids(action="alerts.resolve") == [e["audit_id"] for e in everything if e["action"] == "alerts.resolve"]
    # Each service stamps its entries with its own clock (loyalty's, alerts' and campaigns' are set here).
    pivot = next(e for e in everything if e["action"] == "alerts.ack")["at"]
    moment = datetime.fromisoformat(pivot.replace("Z", "+00:00")).astimezone(SHANGHAI)
    after, before = ([e["audit_id"] for e in everything if e["at"] >= pivot],
                     [e["audit_id"] for e in everything if e["at"] < pivot])
    assert after and before
    assert (ids(since=moment.isoformat()), ids(until=moment.isoformat())) == (after, before)
    assert ids(since=moment.isoformat(), until=moment.isoformat()) == []
    bad = admin["identity"].get("/v1/audit", params={"since": "2026-11-10T09:00:00"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "moment_needs_zone"
    pages, cursor = [], None
    while True:
        r = admin["identity"].get("/v1/audit", params={"limit": 3, **({"cursor": cursor} if cursor else {})}).json()
        pages += [e["audit_id"] for e in r["items"]]
        cursor = r["next_cursor"]
        if cursor is None:
            break
    assert pages == [e["audit_id"] for e in everything]
    # Admin only; and nothing changes an entry.
    for key in (READER, OPERATOR):
        assert flow.platform["identity"].api(key).get("/v1/audit").status_code == 403
    assert admin["identity"].delete("/v1/audit").status_code in (404, 405)
    # A replay of every topic adds no entry twice.
    flow.platform.replay()
    assert ids() == [e["audit_id"] for e in everything]


def r_adjustment_target(entries: list[dict[str, Any]]) -> str:
    """The adjustment's id, as loyalty answered it (an ``adj_`` id)."""
    [target] = [e["target"] for e in entries if e["action"] == "loyalty.adjustment"]
    assert target.startswith("adj_")
    return target


def test_a_generated_scenario_shows_a_reader_no_personal_data_on_any_get_route(flow: Flow):
    from crm.scenario import generate
    from tests.e2e.helpers import personal_data

    scenario = generate(12, seed=12, prefix=new_id("s"))
    events = [e for e in scenario.events if isinstance(e, dict)]
    r = flow.identity.post("/v1/events", json=events)
    assert r.status_code in (202, 207), r.text
    flow.platform.settle()
    scan = personal_data(scenario)
    reader = {n: s.api(READER) for n, s in flow.platform.services.items()}
    customers = [flow.customer_id(phone=p.digits) for p in scenario.people[:4]]
    alerts = reader["alerts"].get("/v1/alerts", params={"limit": 1}).json()["items"]
    for customer in customers:
        values = _path_values(customer, alerts[0]["alert_id"] if alerts else "nobody", "nobody", "nobody")
        for name, service in flow.platform.services.items():
            for route, (status, body) in _every_get(reader[name], service.service.api, values).items():
                found = scan.search(body)
                assert found is None, f"{name} {route} ({status}) shows {found.group(0)!r}"
        view = reader["identity"].get(f"/v1/customers/{customer}").json()
        assert view["phone"].count("*") == 4
