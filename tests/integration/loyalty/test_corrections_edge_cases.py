"""Edge cases of loyalty's staff corrections (issue 14: merges, refunds, retries), expected values worked out
by hand from the default rules (3-month window, monthly reviews; C: 6 visits and 4,500 CNY, B: 12 and 9,000,
A: 18 and 15,000; one point per CNY)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from services.loyalty import messages
from services.loyalty.app import create_app
from services.loyalty.config import LoyaltySettings
from services.loyalty.handlers import timers
from shared.contract.messages import decode
from shared.settings import Settings
from tests.integration.loyalty.conftest import Clock, merge_msg, purchase_msg, refund_msg
from tests.integration.loyalty.invariants import check_invariants

KEYS = "k-admin:admin,k-admin2:admin,k-op:operator,k-read:reader"


def _as(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


OP, ADMIN, ADMIN2, READ = _as("k-op"), _as("k-admin"), _as("k-admin2"), _as("k-read")


def _client(store, **config) -> TestClient:
    clock = Clock("2026-11-01 12:00")
    settings = Settings(_env_file=None, api_keys=KEYS, timezone="Asia/Shanghai")
    service = create_app(settings, store=store, publish=lambda _: None, clock=clock,
                         config=LoyaltySettings(_env_file=None, **config))
    client = TestClient(service.api)
    client.service, client.clock = service, clock
    return client


def _buy(api, record: str, days: list[str], amount: str) -> list:
    batch = [purchase_msg(f"{record}-{d}", amount, f"{d} 12:00", record=record) for d in days]
    return [decode(m.value) for m in messages.consume(batch, deps=api.service.deps).outbox]


def _days(month: str, first: int, n: int) -> list[str]:
    return [f"{month}-{d:02d}" for d in range(first, first + n)]


def _account(api, customer: str) -> dict:
    return api.get(f"/v1/loyalty/accounts/{customer}", headers=READ).json()


def test_points_are_earned_at_the_overridden_tiers_multiplier_and_at_the_rules_tier_after_it(store):
    api = _client(store, tier_multipliers="A=2")
    _buy(api, "c_mx", _days("2026-10", 5, 6), "800.00")  # C by the rules: 4,800 points at 1x
    r = api.post("/v1/loyalty/accounts/c_mx/tier-override", json={"tier": "A", "until": "2026-12-31",
                                                                   "reason": "courtesy"}, headers=OP)
    assert r.status_code == 201, r.text
    api.clock.set("2026-11-02 13:00")
    _buy(api, "c_mx", ["2026-11-02"], "100.00")  # at A: 2 x 100
    assert _account(api, "c_mx")["points_balance"] == 4800 + 200
    api.clock.set("2027-01-01 00:00:01")
    timers.run_due(deps=api.service.deps)  # Oct..Dec: 7 visits, 4,900 CNY: back to C
    assert _account(api, "c_mx")["tier"] == "C"
    api.clock.set("2027-01-02 13:00")
    _buy(api, "c_mx", ["2027-01-02"], "100.00")  # at C again: 1 x 100
    assert check_invariants(api.service.store, ["c_mx"]) == {"c_mx": 4800 + 200 + 100}


def test_an_approved_adjustment_then_a_refund_leaves_the_exact_balance(store):
    api = _client(store)
    messages.consume([purchase_msg("c_ar-1", "500.00", "2026-10-20 12:00", record="c_ar", order="o-ar")],
                     deps=api.service.deps)
    asked = api.post("/v1/loyalty/accounts/c_ar/adjustments", json={"points": 2000, "reason": "till outage"},
                     headers=OP)
    assert asked.status_code == 202, asked.text
    ok = api.post(f"/v1/loyalty/approvals/{asked.json()['approval_id']}/approve", json={"reason": "checked"},
                  headers=ADMIN)
    assert ok.status_code == 200 and ok.json()["points_balance"] == 2500
    messages.consume([refund_msg("c_ar-r", "o-ar", "200.00", "2026-10-25 12:00", record="c_ar")],
                     deps=api.service.deps)
    assert check_invariants(api.service.store, ["c_ar"]) == {"c_ar": 2500 - 200}


def test_a_large_adjustment_with_a_blank_reason_is_refused_naming_the_field(store):
    api = _client(store)
    _buy(api, "c_bl", ["2026-10-20"], "100.00")
    r = api.post("/v1/loyalty/accounts/c_bl/adjustments", json={"points": 5000, "reason": "    "}, headers=OP)
    assert r.status_code == 422, r.text
    assert [d["loc"] for d in r.json()["error"]["details"]] == ["body.reason"]


def test_after_a_merge_joins_two_overridden_customers_lifting_one_leaves_the_other_in_force(store):
    api = _client(store)
    _buy(api, "c_x", _days("2026-10", 5, 6), "800.00")  # C
    _buy(api, "c_y", _days("2026-10", 5, 6), "800.00")  # C
    url = "/v1/loyalty/accounts/{}/tier-override"
    r = api.post(url.format("c_x"), json={"tier": "A", "until": "2026-12-31", "reason": "launch guest"}, headers=OP)
    assert r.status_code == 201
    api.clock.set("2026-11-01 13:00")
    r = api.post(url.format("c_y"), json={"tier": "B", "until": "2026-12-31", "reason": "courtesy"}, headers=OP)
    assert r.status_code == 201
    api.clock.set("2026-11-02 10:00")
    messages.consume([merge_msg("c_y", "c_x", ["c_x"], "2026-11-02 10:00")], deps=api.service.deps)
    shown = _account(api, "c_y")
    assert (shown["tier"], shown["tier_override"]["tier"]) == ("B", "B")  # the latest set holds
    api.clock.set("2026-11-03 10:00")
    lift = api.post("/v1/loyalty/accounts/c_y/tier-override/lift", json={"reason": "done"}, headers=OP)
    assert lift.status_code == 200, lift.text
    shown = _account(api, "c_y")
    # c_x's override (A through Dec 31) is in force again: the account shows it and its tier.
    assert (shown["tier"], shown["tier_override"]["tier"]) == ("A", "A")
    history = api.get("/v1/loyalty/accounts/c_y/tiers", headers=READ).json()["history"]
    assert [(h["previous"], h["tier"]) for h in history][-1] == ("B", "A")


@pytest.mark.parametrize("points", [5000])
def test_a_retried_request_with_its_key_after_approval_posts_nothing_more(store, points):
    api = _client(store)
    _buy(api, "c_rt", ["2026-10-20"], "100.00")
    url, key = "/v1/loyalty/accounts/c_rt/adjustments", {**OP, "Idempotency-Key": "k-1"}
    first = api.post(url, json={"points": points, "reason": "outage"}, headers=key).json()
    api.post(f"/v1/loyalty/approvals/{first['approval_id']}/approve", json={"reason": "ok"}, headers=ADMIN)
    again = api.post(url, json={"points": points, "reason": "outage"}, headers=key)
    assert again.status_code == 202 and again.json()["approval_id"] == first["approval_id"]
    listed = api.get("/v1/loyalty/approvals", params={"status": "all"}, headers=ADMIN).json()["items"]
    assert len(listed) == 1
    assert check_invariants(api.service.store, ["c_rt"]) == {"c_rt": 100 + points}


def test_an_approval_asked_before_a_merge_and_approved_after_it_goes_back_with_its_customer_on_unmerge(store):
    api = _client(store)
    _buy(api, "c_p", ["2026-10-20"], "100.00")
    _buy(api, "c_q", ["2026-10-21"], "300.00")
    asked = api.post("/v1/loyalty/accounts/c_p/adjustments", json={"points": 2000, "reason": "till outage"},
                     headers=OP).json()
    messages.consume([merge_msg("c_q", "c_p", ["c_p"], "2026-11-01 12:00")], deps=api.service.deps)
    ok = api.post(f"/v1/loyalty/approvals/{asked['approval_id']}/approve", json={"reason": "checked"},
                  headers=ADMIN)
    assert ok.status_code == 200 and ok.json()["points_balance"] == 2400
    messages.consume([merge_msg("c_q", "c_p", ["c_p"], "2026-11-01 13:00", undo=True)], deps=api.service.deps)
    # The points were asked for c_p's account: the unmerge gives them back to c_p, as it gives back c_p's own.
    assert (_account(api, "c_p")["points_balance"], _account(api, "c_q")["points_balance"]) == (2100, 300)
    assert check_invariants(api.service.store, ["c_p", "c_q"]) == {"c_p": 2100, "c_q": 300}


def test_a_refund_after_the_override_was_lifted_takes_back_what_the_purchase_earned_at_the_held_tier(store):
    api = _client(store, tier_multipliers="A=2")
    _buy(api, "c_rf", _days("2026-10", 5, 6), "800.00")  # C: 4,800 points
    api.post("/v1/loyalty/accounts/c_rf/tier-override", json={"tier": "A", "until": "2026-12-31",
                                                               "reason": "courtesy"}, headers=OP)
    api.clock.set("2026-11-02 13:00")
    messages.consume([purchase_msg("c_rf-n", "100.00", "2026-11-02 12:00", record="c_rf", order="o-rf")],
                     deps=api.service.deps)
    assert _account(api, "c_rf")["points_balance"] == 5000  # 200 at A
    api.clock.set("2026-11-03 10:00")
    assert api.post("/v1/loyalty/accounts/c_rf/tier-override/lift", json={"reason": "done"},
                    headers=OP).status_code == 200
    api.clock.set("2026-11-04 10:00")
    messages.consume([refund_msg("c_rf-r", "o-rf", "100.00", "2026-11-04 10:00", record="c_rf")],
                     deps=api.service.deps)
    assert check_invariants(api.service.store, ["c_rf"]) == {"c_rf": 4800}
