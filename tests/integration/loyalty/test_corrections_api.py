"""Loyalty's staff corrections through the HTTP API, on each store (issue 14): a tier override until a date
(with its interplay with purchases and reviews, expected tiers worked out by hand from the default rules:
a 3-month window, monthly reviews, no grace; C needs 6 visits and 4,500 CNY in the window, B 12 and 9,000,
A 18 and 15,000), and adjustments above the approval threshold that wait for another admin."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from services.loyalty import messages
from services.loyalty.app import create_app
from services.loyalty.config import LoyaltySettings
from services.loyalty.handlers import timers
from shared.access.keys import key_name
from shared.contract.messages import CustomerOwnerChanged, decode
from shared.settings import Settings
from tests.integration.loyalty.conftest import Clock, at, incoming, purchase_msg
from tests.integration.loyalty.invariants import check_invariants

KEYS = "k-admin:admin,k-admin2:admin,k-op:operator,k-read:reader,k-sh1-op:operator@store=SH-001,"\
       "k-sh1-admin:admin@store=SH-001"
NAME_KEY = Settings(_env_file=None).name_key()


def _as(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


OP, ADMIN, ADMIN2, READ = _as("k-op"), _as("k-admin"), _as("k-admin2"), _as("k-read")
SH1_OP, SH1_ADMIN = _as("k-sh1-op"), _as("k-sh1-admin")


@pytest.fixture
def api(store):
    """The loyalty API over each store with two admins, an operator, a reader and SH-001's own staff."""
    clock = Clock("2026-11-01 12:00")
    published: list = []
    settings = Settings(_env_file=None, api_keys=KEYS, timezone="Asia/Shanghai")
    service = create_app(settings, store=store, publish=published.extend, clock=clock,
                         config=LoyaltySettings(_env_file=None))
    client = TestClient(service.api)
    client.published, client.service, client.clock = published, service, clock
    return client


def _buy(api, record: str, days: list[str], amount: str) -> list:
    batch = [purchase_msg(f"{record}-{d}", amount, f"{d} 12:00", record=record) for d in days]
    return [decode(m.value) for m in messages.consume(batch, deps=api.service.deps).outbox]


def _days(month: str, first: int, n: int) -> list[str]:
    return [f"{month}-{d:02d}" for d in range(first, first + n)]


def _sent(api, since: int = 0) -> list:
    return [decode(m.value) for m in api.published[since:]]


def _tier_changes(messages_: list) -> list[tuple]:
    return [(m.previous, m.tier, m.direction) for m in messages_ if m.kind == "loyalty.tier_changed"]


def _audits(api, since: int = 0) -> list[tuple]:
    return [(m.action, m.customer_id, m.target, m.reason, m.actor) for m in _sent(api, since)
            if m.kind == "audit.recorded"]


def _due(api) -> list:
    return [decode(m.value) for m in timers.run_due(deps=api.service.deps).outbox]


def _tier(api, customer: str) -> str | None:
    return api.get(f"/v1/loyalty/accounts/{customer}", headers=READ).json()["tier"]


def _own(api, customer: str, store_id: str) -> None:
    messages.consume([incoming(CustomerOwnerChanged(customer_id=customer, store_id=store_id,
                                                    at=at("2026-10-01 00:00")), "crm.customer.owners")],
                     deps=api.service.deps)


# -- tier overrides ---------------------------------------------------------------------------------


def test_an_override_holds_through_a_review_and_the_first_review_after_its_last_day_decides(api):
    # October: 6 visit days of 800 = 6 visits, 4,800 CNY in Aug..Oct: C from the 6th purchase (Oct 10).
    assert _tier_changes(_buy(api, "c_ov", _days("2026-10", 5, 6), "800.00")) == [(None, "C", "upgrade")]
    before = len(api.published)
    reason = "courtesy upgrade after the counter lost her order"
    r = api.post("/v1/loyalty/accounts/c_ov/tier-override", json={"tier": "A", "until": "2026-12-31",
                                                                   "reason": reason}, headers=OP)
    assert r.status_code == 201, r.text
    ov = r.json()
    assert (ov["tier"], ov["until"], ov["active"], ov["lifted"], ov["by"]) == (
        "A", "2026-12-31", True, None, key_name("k-op", NAME_KEY))
    assert (ov["starts_at"], ov["ends_at"]) == ("2026-11-01T04:00:00.000000Z", "2026-12-31T16:00:00.000000Z")
    changed = [m for m in _sent(api, before) if m.kind == "loyalty.tier_changed"]
    assert [(m.previous, m.tier, m.direction, m.reason) for m in changed] == [
        ("C", "A", "upgrade", f"staff override {ov['override_id']} until 2026-12-31")]
    assert changed[0].benefits["best_discount"] == "0.85"
    assert _audits(api, before) == [("loyalty.tier_override", "c_ov", ov["override_id"], reason,
                                     key_name("k-op", NAME_KEY))]
    # The account shows the override, who set it and until when; its reason is a staff note: withheld below admin.
    shown = api.get("/v1/loyalty/accounts/c_ov", headers=READ).json()
    assert (shown["tier"], shown["tier_benefits"]["best_discount"]) == ("A", "0.85")
    assert {k: shown["tier_override"][k] for k in ("override_id", "tier", "until", "by", "reason")} == {
        "override_id": ov["override_id"], "tier": "A", "until": "2026-12-31", "by": key_name("k-op", NAME_KEY),
        "reason": f"[note withheld: {len(reason)} characters]"}
    assert api.get("/v1/loyalty/accounts/c_ov", headers=ADMIN).json()["tier_override"]["reason"] == reason
    # The Dec 1 review (Sep..Nov: 6 visits, 4,800 CNY: C) falls inside the override: the member stays A.
    api.clock.set("2026-12-01 00:00:01")
    assert _tier_changes(_due(api)) == []
    assert _tier(api, "c_ov") == "A"
    # The override's last day is Dec 31; the Jan 1 review (Oct..Dec: 6 visits, 4,800 CNY) brings C back.
    api.clock.set("2027-01-01 00:00:01")
    assert _tier_changes(_due(api)) == [("A", "C", "downgrade")]
    after = api.get("/v1/loyalty/accounts/c_ov", headers=READ).json()
    assert (after["tier"], after["tier_override"]) == ("C", None)
    history = api.get("/v1/loyalty/accounts/c_ov/tiers", headers=READ).json()["history"]
    assert [(h["at"], h["previous"], h["tier"]) for h in history] == [
        ("2026-10-10T12:00:00+08:00", None, "C"), ("2026-11-01T12:00:00+08:00", "C", "A"),
        ("2027-01-01T00:00:00+08:00", "A", "C")]
    assert history[1]["reason"] == f"staff override {ov['override_id']} until 2026-12-31"


def test_during_an_override_purchases_count_but_do_not_upgrade_and_after_a_lift_the_next_one_does(api):
    # October: 12 visit days of 800 = 12 visits, 9,600 CNY: B.
    _buy(api, "c_dn", _days("2026-10", 1, 12), "800.00")
    assert _tier(api, "c_dn") == "B"
    api.clock.set("2026-11-02 10:00")
    before = len(api.published)
    r = api.post("/v1/loyalty/accounts/c_dn/tier-override",
                 json={"tier": "C", "until": "2026-12-31", "reason": "tier given by mistake in October"}, headers=OP)
    assert r.status_code == 201, r.text
    assert _tier_changes(_sent(api, before)) == [("B", "C", "downgrade")]
    # Nov 3..8: 6 visits of 1,000: Sep..Nov holds 18 visits, 15,600 CNY, A's figures; the override keeps C.
    api.clock.set("2026-11-08 20:00")
    assert _tier_changes(_buy(api, "c_dn", _days("2026-11", 3, 6), "1000.00")) == []
    assert _tier(api, "c_dn") == "C"
    api.clock.set("2026-11-10 10:00")
    before = len(api.published)
    lift = api.post("/v1/loyalty/accounts/c_dn/tier-override/lift", json={"reason": "reviewed: she qualifies"},
                    headers=OP)
    assert lift.status_code == 200, lift.text
    assert (lift.json()["active"], lift.json()["lifted"]) == (
        False, {"at": "2026-11-10T02:00:00.000000Z", "by": key_name("k-op", NAME_KEY),
                "reason": "reviewed: she qualifies"})
    # The normal rules resume now: the tier changes at the next purchase that meets a better one or review.
    assert _tier_changes(_sent(api, before)) == []
    assert _audits(api, before) == [("loyalty.tier_override_lift", "c_dn", r.json()["override_id"],
                                     "reviewed: she qualifies", key_name("k-op", NAME_KEY))]
    shown = api.get("/v1/loyalty/accounts/c_dn", headers=READ).json()
    assert (shown["tier"], shown["tier_override"]) == ("C", None)
    again = api.post("/v1/loyalty/accounts/c_dn/tier-override/lift", json={"reason": "again"}, headers=OP)
    assert again.status_code == 409 and again.json()["error"]["code"] == "no_override_in_force"
    # Nov 12, 100 CNY: 19 visits, 15,700 CNY in Sep..Nov: A at once.
    assert _tier_changes(_buy(api, "c_dn", ["2026-11-12"], "100.00")) == [("C", "A", "upgrade")]
    assert check_invariants(api.service.store, ["c_dn"]) == {"c_dn": 9600 + 6000 + 100}


def test_a_lifted_override_leaves_the_tier_to_the_next_review(api):
    _buy(api, "c_lf", _days("2026-10", 5, 6), "800.00")  # C, as above
    r = api.post("/v1/loyalty/accounts/c_lf/tier-override",
                 json={"tier": "A", "until": "2027-03-31", "reason": "launch event guest"}, headers=OP)
    assert r.status_code == 201 and _tier(api, "c_lf") == "A"
    api.clock.set("2026-11-20 09:00")
    lift = api.post("/v1/loyalty/accounts/c_lf/tier-override/lift", json={"reason": "event cancelled"}, headers=ADMIN)
    assert lift.status_code == 200, lift.text
    assert _tier(api, "c_lf") == "A"  # no downgrade between reviews
    api.clock.set("2026-12-01 00:00:01")  # Sep..Nov: 6 visits, 4,800 CNY: C
    assert _tier_changes(_due(api)) == [("A", "C", "downgrade")]
    # A new override may follow a lifted one.
    again = api.post("/v1/loyalty/accounts/c_lf/tier-override",
                     json={"tier": "B", "until": "2026-12-01", "reason": "second thoughts"}, headers=OP)
    assert again.status_code == 201 and _tier(api, "c_lf") == "B"
    # Every override stays listed, newest first, with who lifted it and why (reasons masked below admin).
    listed = api.get("/v1/loyalty/accounts/c_lf/tier-overrides", headers=READ).json()["items"]
    assert [(o["tier"], o["active"], o["lifted"] and o["lifted"]["by"]) for o in listed] == [
        ("B", True, None), ("A", False, key_name("k-admin", NAME_KEY))]
    assert listed[1]["lifted"]["reason"] == f"[note withheld: {len('event cancelled')} characters]"
    exported = api.get("/v1/customers/c_lf/export", headers=ADMIN).json()
    assert [(o["override_id"], o["reason"]) for o in exported["tier_overrides"]] == [
        (again.json()["override_id"], "second thoughts"), (r.json()["override_id"], "launch event guest")]
    assert exported["account"]["tier_override"]["tier"] == "B"


def test_override_input_role_and_conflicts_answer_with_the_field_named(api):
    _buy(api, "c_bad", _days("2026-10", 5, 6), "800.00")
    url = "/v1/loyalty/accounts/c_bad/tier-override"
    ok = {"tier": "A", "until": "2026-12-31", "reason": "courtesy"}

    def field(body: dict) -> tuple:
        r = api.post(url, json=body, headers=OP)
        assert r.status_code == 422, r.text
        return r.json()["error"]["code"], [d["loc"] for d in r.json()["error"]["details"]]

    assert field({k: v for k, v in ok.items() if k != "reason"}) == ("invalid_request", ["body.reason"])
    assert field({**ok, "reason": "   "}) == ("invalid_request", ["body.reason"])
    assert field({**ok, "tier": "Z"}) == ("unknown_tier", ["body.tier"])
    assert field({**ok, "until": "2026-10-31"}) == ("until_in_past", ["body.until"])
    assert field({**ok, "until": "next week"}) == ("invalid_request", ["body.until"])
    assert api.post(url, json=ok, headers=READ).status_code == 403
    assert api.post("/v1/loyalty/accounts/c_nobody/tier-override", json=ok, headers=OP).status_code == 404
    assert api.post(url, json=ok, headers=OP).status_code == 201
    busy = api.post(url, json={**ok, "tier": "B"}, headers=OP)
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "override_in_force"
    assert api.post(f"{url}/lift", json={}, headers=OP).json()["error"]["details"][0]["loc"] == "body.reason"
    assert _tier(api, "c_bad") == "A"


# -- adjustments above the approval threshold ----------------------------------------------------------


def test_a_large_adjustment_waits_for_another_admin_and_is_posted_once_however_often_approved(api):
    _buy(api, "c_big", ["2026-10-20"], "500.00")
    url = "/v1/loyalty/accounts/c_big/adjustments"
    # Up to the threshold (1,000 points, either way) an adjustment applies at once, as before.
    small = api.post(url, json={"points": 1000, "reason": "welcome gift"}, headers=OP)
    assert small.status_code == 201 and small.json()["points_balance"] == 1500
    before = len(api.published)
    key = {**OP, "Idempotency-Key": "req-1"}
    r = api.post(url, json={"points": 1001, "reason": "points lost in the till outage"}, headers=key)
    assert r.status_code == 202, r.text
    pending = r.json()
    assert {k: pending[k] for k in ("customer_id", "points", "status", "requested_by", "decision",
                                    "adjustment_id", "points_balance")} == {
        "customer_id": "c_big", "points": 1001, "status": "pending", "requested_by": key_name("k-op", NAME_KEY),
        "decision": None, "adjustment_id": None, "points_balance": 1500}
    again = api.post(url, json={"points": 1001, "reason": "points lost in the till outage"}, headers=key)
    assert again.status_code == 202 and again.json() == pending and again.headers["Idempotent-Replayed"] == "true"
    assert api.get("/v1/loyalty/accounts/c_big", headers=READ).json()["points_balance"] == 1500
    assert _audits(api, before) == [("loyalty.adjustment_request", "c_big", pending["approval_id"],
                                     "points lost in the till outage", key_name("k-op", NAME_KEY))]
    listed = api.get("/v1/loyalty/approvals", headers=OP).json()["items"]
    assert [(a["approval_id"], a["reason"]) for a in listed] == [
        (pending["approval_id"], f"[note withheld: {len('points lost in the till outage')} characters]")]
    assert api.get("/v1/loyalty/approvals", headers=READ).json()["items"] == listed  # reads, as the ledger's
    # An operator cannot approve; an admin who asked cannot approve their own (below).
    approve = f"/v1/loyalty/approvals/{pending['approval_id']}/approve"
    assert api.post(approve, json={"reason": "checked the till log"}, headers=OP).status_code == 403
    assert api.post(approve, json={}, headers=ADMIN).json()["error"]["details"][0]["loc"] == "body.reason"
    before = len(api.published)
    done = api.post(approve, json={"reason": "checked the till log"}, headers=ADMIN)
    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["status"], body["points_balance"], body["decision"]["by"], body["decision"]["reason"]) == (
        "approved", 2501, key_name("k-admin", NAME_KEY), "checked the till log")
    # Sent again, by the same admin or another: the same answer, nothing posted, nothing audited again.
    for who in (ADMIN, ADMIN2):
        retry = api.post(approve, json={"reason": "checked the till log"}, headers=who)
        assert retry.status_code == 200 and retry.json() == body and retry.headers["Idempotent-Replayed"] == "true"
    assert _audits(api, before) == [("loyalty.adjustment_approve", "c_big", pending["approval_id"],
                                     "checked the till log", key_name("k-admin", NAME_KEY))]
    late = api.post(f"/v1/loyalty/approvals/{pending['approval_id']}/reject", json={"reason": "no"}, headers=ADMIN2)
    assert late.status_code == 409 and late.json()["error"]["code"] == "already_decided"
    ledger = api.get("/v1/loyalty/accounts/c_big/ledger", headers=ADMIN).json()["items"]
    manual = [e for e in ledger if e["rule"] == "manual" and e["points"] == 1001]
    assert len(manual) == 1 and manual[0]["cause"]["approval_id"] == pending["approval_id"]
    assert manual[0]["cause"]["approved_by"] == key_name("k-admin", NAME_KEY)
    assert manual[0]["cause"]["by"] == key_name("k-op", NAME_KEY)
    assert check_invariants(api.service.store, ["c_big"]) == {"c_big": 2501}
    assert api.get("/v1/loyalty/approvals", headers=ADMIN).json()["items"] == []
    exported = api.get("/v1/customers/c_big/export", headers=ADMIN).json()["approvals"]
    assert [(a["approval_id"], a["status"], a["reason"]) for a in exported] == [
        (pending["approval_id"], "approved", "points lost in the till outage")]
    decided = api.get("/v1/loyalty/approvals", params={"status": "approved"}, headers=ADMIN).json()["items"]
    assert [a["approval_id"] for a in decided] == [pending["approval_id"]]


def test_the_requester_cannot_approve_their_own_and_a_rejection_changes_no_balance(api):
    _buy(api, "c_rej", ["2026-10-20"], "3000.00")
    url = "/v1/loyalty/accounts/c_rej/adjustments"
    mine = api.post(url, json={"points": -2000, "reason": "duplicate import of points"}, headers=ADMIN).json()
    assert mine["status"] == "pending"
    own = api.post(f"/v1/loyalty/approvals/{mine['approval_id']}/approve", json={"reason": "fine"}, headers=ADMIN)
    assert own.status_code == 403 and own.json()["error"]["code"] == "own_request"
    own = api.post(f"/v1/loyalty/approvals/{mine['approval_id']}/reject", json={"reason": "fine"}, headers=ADMIN)
    assert own.status_code == 403 and own.json()["error"]["code"] == "own_request"
    before = len(api.published)
    rejected = api.post(f"/v1/loyalty/approvals/{mine['approval_id']}/reject",
                        json={"reason": "the import was right"}, headers=ADMIN2)
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["status"], rejected.json()["decision"]["reason"], rejected.json()["points_balance"]) == (
        "rejected", "the import was right", 3000)
    assert _audits(api, before) == [("loyalty.adjustment_reject", "c_rej", mine["approval_id"],
                                     "the import was right", key_name("k-admin2", NAME_KEY))]
    late = api.post(f"/v1/loyalty/approvals/{mine['approval_id']}/approve", json={"reason": "ok"}, headers=ADMIN2)
    assert late.status_code == 409 and late.json()["error"]["code"] == "already_decided"
    assert check_invariants(api.service.store, ["c_rej"]) == {"c_rej": 3000}
    assert api.post("/v1/loyalty/approvals/apr_nothing/approve", json={"reason": "x"},
                    headers=ADMIN2).status_code == 404


def test_an_approval_the_balance_no_longer_covers_is_refused_and_stays_pending(api):
    _buy(api, "c_neg", ["2026-10-20"], "2500.00")
    url = "/v1/loyalty/accounts/c_neg/adjustments"
    too_much = api.post(url, json={"points": -2501, "reason": "wrong"}, headers=OP)
    assert too_much.status_code == 409 and too_much.json()["error"]["code"] == "insufficient_points"
    asked = api.post(url, json={"points": -2000, "reason": "goodwill points taken back"}, headers=OP).json()
    assert api.post(url, json={"points": -1000, "reason": "gift card bought"}, headers=OP).status_code == 201
    refused = api.post(f"/v1/loyalty/approvals/{asked['approval_id']}/approve", json={"reason": "ok"}, headers=ADMIN)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "insufficient_points"
    assert api.get(f"/v1/loyalty/approvals/{asked['approval_id']}", headers=OP).json()["status"] == "pending"
    assert check_invariants(api.service.store, ["c_neg"]) == {"c_neg": 1500}


def test_corrections_of_a_customer_outside_the_callers_stores_answer_404(api):
    _buy(api, "c_far", _days("2026-10", 5, 6), "800.00")
    _buy(api, "c_near", ["2026-10-20"], "100.00")
    _own(api, "c_far", "SH-002")
    _own(api, "c_near", "SH-001")
    far = api.post("/v1/loyalty/accounts/c_far/adjustments", json={"points": 5000, "reason": "outage"}, headers=OP)
    near = api.post("/v1/loyalty/accounts/c_near/adjustments", json={"points": 5000, "reason": "outage"}, headers=OP)
    assert far.status_code == near.status_code == 202
    body = {"tier": "A", "until": "2026-12-31", "reason": "courtesy"}
    for path, payload in (("/v1/loyalty/accounts/c_far/tier-override", body),
                          ("/v1/loyalty/accounts/c_far/tier-override/lift", {"reason": "x"}),
                          ("/v1/loyalty/accounts/c_far/adjustments", {"points": 5000, "reason": "outage"})):
        r = api.post(path, json=payload, headers=SH1_OP)
        assert r.status_code == 404 and r.json()["error"]["code"] == "account_not_found", path
    for verb in ("approve", "reject"):
        r = api.post(f"/v1/loyalty/approvals/{far.json()['approval_id']}/{verb}", json={"reason": "x"},
                     headers=SH1_ADMIN)
        assert r.status_code == 404 and r.json()["error"]["code"] == "approval_not_found"
    assert api.get(f"/v1/loyalty/approvals/{far.json()['approval_id']}", headers=SH1_OP).status_code == 404
    assert [a["customer_id"] for a in api.get("/v1/loyalty/approvals", headers=SH1_OP).json()["items"]] == ["c_near"]
    assert sorted(a["customer_id"] for a in api.get("/v1/loyalty/approvals", headers=OP).json()["items"]) == [
        "c_far", "c_near"]  # asked at the same moment: in approval id order
    ok = api.post(f"/v1/loyalty/approvals/{near.json()['approval_id']}/approve", json={"reason": "x"},
                  headers=SH1_ADMIN)
    assert ok.status_code == 200 and ok.json()["points_balance"] == 5100
    assert _tier(api, "c_far") == "C"
    assert api.get("/v1/loyalty/accounts/c_far", headers=READ).json()["points_balance"] == 4800


def test_two_admins_approving_at_once_post_the_adjustment_once(sqlite_store):
    import threading

    settings = Settings(_env_file=None, api_keys=KEYS + ",k-admin3:admin", timezone="Asia/Shanghai")
    service = create_app(settings, store=sqlite_store, publish=lambda _: None, clock=Clock("2026-11-01 12:00"),
                         config=LoyaltySettings(_env_file=None))
    client = TestClient(service.api)
    messages.consume([purchase_msg("c_two-p", "100.00", "2026-10-01 10:00", record="c_two")], deps=service.deps)
    asked = client.post("/v1/loyalty/accounts/c_two/adjustments", json={"points": 4000, "reason": "outage"},
                        headers=OP).json()
    answers: list = []
    lock = threading.Lock()

    def approve(key: str) -> None:
        r = client.post(f"/v1/loyalty/approvals/{asked['approval_id']}/approve", json={"reason": "ok"},
                        headers=_as(key))
        with lock:
            answers.append((r.status_code, r.headers.get("Idempotent-Replayed"), r.json()["points_balance"]))

    threads = [threading.Thread(target=approve, args=(k,)) for k in ("k-admin", "k-admin2", "k-admin3") * 4]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    # One approval posts; the others, waiting on the lock, find it approved and answer it again.
    assert sorted(answers, key=lambda a: a[1] or "") == [(200, None, 4100)] + [(200, "true", 4100)] * 11
    assert check_invariants(sqlite_store, ["c_two"]) == {"c_two": 4100}
