"""The loyalty API in process against each store: rewards, redemptions, idempotency, cancellation,
adjustments, the ledger and tiers, as ops and store staff use them."""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient

from services.loyalty import messages
from services.loyalty.app import create_app
from services.loyalty.config import LoyaltySettings
from shared.access.keys import key_name
from shared.contract.messages import decode
from shared.settings import Settings
from tests.integration.loyalty.conftest import Clock, purchase_msg
from tests.integration.loyalty.invariants import check_invariants

KEYS = {"admin": "k-admin", "operator": "k-op", "reader": "k-read"}


def _as(role: str) -> dict:
    return {"Authorization": f"Bearer {KEYS[role]}"}


def _earn(client, record: str, amount: str, n: int = 1) -> None:
    messages.consume([purchase_msg(f"{record}-{i}", amount, "2026-10-20 10:00", record=record)
                      for i in range(n)], deps=client.service.deps)


def _reward(client, **over) -> dict:
    body = {"name": "Silk scarf", "points_cost": 300, "stock": 2, "per_member_limit": 1, **over}
    r = client.post("/v1/loyalty/rewards", json=body, headers=_as("admin"))
    assert r.status_code == 201, r.text
    return r.json()


def test_account_shows_balance_tier_benefits_and_expiring_lots(loyalty):
    _earn(loyalty, "c_acc", "500.00")
    r = loyalty.get("/v1/loyalty/accounts/c_acc", headers=_as("reader"))
    assert r.status_code == 200
    body = r.json()
    assert (body["points_balance"], body["tier"], body["debt"]) == (500, None, 0)
    assert body["expiring"] == [{"points": 500, "expires_at": "2027-10-21T00:00:00+08:00"}]
    assert loyalty.get("/v1/loyalty/accounts/c_nobody", headers=_as("reader")).json()["error"]["code"] == \
        "account_not_found"
    assert loyalty.get("/v1/loyalty/accounts/c_acc").status_code == 401


def test_redemption_takes_stock_and_points_and_is_idempotent_per_key(loyalty):
    _earn(loyalty, "c_red", "700.00")
    reward = _reward(loyalty)
    url = "/v1/loyalty/accounts/c_red/redemptions"
    first = loyalty.post(url, json={"reward_id": reward["reward_id"]}, headers={**_as("operator"),
                                                                                 "Idempotency-Key": "till-1"})
    assert first.status_code == 201 and first.json()["points_balance"] == 400
    again = loyalty.post(url, json={"reward_id": reward["reward_id"]}, headers={**_as("operator"),
                                                                                 "Idempotency-Key": "till-1"})
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = loyalty.post(url, json={"reward_id": reward["reward_id"], "quantity": 2},
                         headers={**_as("operator"), "Idempotency-Key": "till-1"})
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"
    # Per-member limit 1: a second redemption with a new key is refused; stock is untouched.
    limit = loyalty.post(url, json={"reward_id": reward["reward_id"]}, headers=_as("operator"))
    assert limit.status_code == 409 and limit.json()["error"]["code"] == "per_member_limit"
    got = loyalty.get(f"/v1/loyalty/rewards/{reward['reward_id']}", headers=_as("reader")).json()
    assert (got["stock"], got["redeemed"]) == (1, 1)
    assert check_invariants(loyalty.service.store, ["c_red"]) == {"c_red": 400}
    parts = [decode(m.value) for m in loyalty.published if decode(m.value).kind == "view.part"]
    assert parts[-1].value["points_balance"] == 400


def test_redemption_refuses_what_the_balance_or_stock_cannot_cover(loyalty):
    _earn(loyalty, "c_poor", "299.99")
    _earn(loyalty, "c_rich", "900.00")
    reward = _reward(loyalty, stock=1, per_member_limit=None)
    poor = loyalty.post("/v1/loyalty/accounts/c_poor/redemptions", json={"reward_id": reward["reward_id"]},
                        headers=_as("operator"))
    assert poor.status_code == 409 and poor.json()["error"]["code"] == "insufficient_points"
    ok = loyalty.post("/v1/loyalty/accounts/c_rich/redemptions", json={"reward_id": reward["reward_id"]},
                      headers=_as("operator"))
    assert ok.status_code == 201
    gone = loyalty.post("/v1/loyalty/accounts/c_rich/redemptions", json={"reward_id": reward["reward_id"]},
                        headers=_as("operator"))
    assert gone.status_code == 409 and gone.json()["error"]["code"] == "out_of_stock"
    reader = loyalty.post("/v1/loyalty/accounts/c_rich/redemptions", json={"reward_id": reward["reward_id"]},
                          headers=_as("reader"))
    assert reader.status_code == 403
    assert check_invariants(loyalty.service.store, ["c_poor", "c_rich"]) == {"c_poor": 299, "c_rich": 600}


def test_reward_validity_dates_are_enforced(loyalty):
    _earn(loyalty, "c_val", "900.00")
    later = _reward(loyalty, valid_from="2026-12-01T00:00:00+08:00")
    r = loyalty.post("/v1/loyalty/accounts/c_val/redemptions", json={"reward_id": later["reward_id"]},
                     headers=_as("operator"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "reward_not_available"
    loyalty.clock.set("2026-12-01 00:00")
    r = loyalty.post("/v1/loyalty/accounts/c_val/redemptions", json={"reward_id": later["reward_id"]},
                     headers=_as("operator"))
    assert r.status_code == 201


def test_cancel_gives_points_and_stock_back_once(loyalty):
    _earn(loyalty, "c_can", "400.00")
    reward = _reward(loyalty)
    red = loyalty.post("/v1/loyalty/accounts/c_can/redemptions", json={"reward_id": reward["reward_id"]},
                       headers=_as("operator")).json()
    cancel = loyalty.post(f"/v1/loyalty/redemptions/{red['redemption_id']}/cancel",
                          json={"reason": "customer changed mind"}, headers=_as("operator"))
    assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled"
    assert cancel.json()["points_balance"] == 400
    twice = loyalty.post(f"/v1/loyalty/redemptions/{red['redemption_id']}/cancel", json={"reason": "again"},
                         headers=_as("operator"))
    assert twice.status_code == 409
    assert loyalty.get(f"/v1/loyalty/rewards/{reward['reward_id']}", headers=_as("reader")).json()["stock"] == 2
    assert check_invariants(loyalty.service.store, ["c_can"]) == {"c_can": 400}


def test_manual_adjustment_needs_operator_and_reason_and_never_goes_below_zero(loyalty):
    _earn(loyalty, "c_adj", "50.00")
    url = "/v1/loyalty/accounts/c_adj/adjustments"
    assert loyalty.post(url, json={"points": 10}, headers=_as("operator")).status_code == 422
    assert loyalty.post(url, json={"points": 10, "reason": "goodwill"}, headers=_as("reader")).status_code == 403
    ok = loyalty.post(url, json={"points": 25, "reason": "goodwill after complaint"}, headers=_as("operator"))
    assert ok.status_code == 201 and ok.json()["points_balance"] == 75
    too_much = loyalty.post(url, json={"points": -76, "reason": "correction"}, headers=_as("operator"))
    assert too_much.status_code == 409 and too_much.json()["error"]["code"] == "insufficient_points"
    assert loyalty.post(url, json={"points": -75, "reason": "correction"}, headers=_as("operator")).status_code == 201
    page = loyalty.get("/v1/loyalty/accounts/c_adj/ledger", params={"limit": 2}, headers=_as("reader")).json()
    assert page["points_balance"] == 0 and len(page["items"]) == 2 and page["next_cursor"]
    rest = loyalty.get("/v1/loyalty/accounts/c_adj/ledger", params={"cursor": page["next_cursor"]},
                       headers=_as("reader")).json()
    everything = page["items"] + rest["items"]
    assert sorted(e["points"] for e in everything) == [-75, 25, 50]
    manual = [e for e in everything if e["rule"] == "manual"]
    # Loyalty cannot tell a customer's name in a note: a reader sees that there is one, an admin reads it.
    assert {e["cause"]["reason"] for e in manual} == {"[note withheld: 24 characters]",
                                                       "[note withheld: 10 characters]"}
    admin = loyalty.get("/v1/loyalty/accounts/c_adj/ledger", headers=_as("admin")).json()["items"]
    assert {e["cause"]["reason"] for e in admin if e["rule"] == "manual"} == {"goodwill after complaint", "correction"}
    # Who did it is the key's display name (a keyed hash under the platform secret), never a plain hash of the key.
    assert {e["cause"]["by"] for e in manual} == {key_name("k-op", Settings(_env_file=None).name_key())}


def test_tier_rules_and_benefits_are_readable_by_store_staff(loyalty):
    body = loyalty.get("/v1/loyalty/tiers", headers=_as("reader")).json()
    assert [(lv["name"], lv["visits_per_month"], lv["spend_per_month"], lv["benefits"]["birthday_gift_cny"],
             lv["benefits"]["best_discount"], lv["benefits"]["manager_call_every_days"],
             lv["benefits"]["manager_visit_every_days"]) for lv in body["levels"]] == [
        ("A", 6, "5000.00", 100, "0.85", 3, 10), ("B", 4, "3000.00", 80, "0.88", 5, 15),
        ("C", 2, "1500.00", 50, "0.90", 3, 30)]
    assert body["window_months"] == 3


def test_concurrent_redemptions_never_oversell(sqlite_store):
    clock = Clock("2026-11-01 12:00")
    settings = Settings(_env_file=None, api_keys="k-admin:admin,k-op:operator", timezone="Asia/Shanghai")
    service = create_app(settings, store=sqlite_store, publish=lambda _: None, clock=clock,
                         config=LoyaltySettings(_env_file=None))
    client = TestClient(service.api)
    members = [f"c_cc{i}" for i in range(40)]
    messages.consume([purchase_msg(f"{m}-p", "500.00", "2026-10-01 10:00", record=m) for m in members],
                     deps=service.deps)
    reward = client.post("/v1/loyalty/rewards", json={"name": "Lamp", "points_cost": 200, "stock": 10},
                         headers=_as("admin")).json()
    codes: list[int] = []
    lock = threading.Lock()

    def go(member: str) -> None:
        r = client.post(f"/v1/loyalty/accounts/{member}/redemptions", json={"reward_id": reward["reward_id"]},
                        headers=_as("operator"))
        with lock:
            codes.append(r.status_code)

    threads = [threading.Thread(target=go, args=(m,)) for m in members]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(codes) == [201] * 10 + [409] * 30
    assert sqlite_store.reward(reward["reward_id"]).stock == 0
    balances = check_invariants(sqlite_store, members)
    assert sorted(balances.values()) == [300] * 10 + [500] * 30


def test_reward_changes_that_would_break_it_are_refused_with_reasons(loyalty):
    reward = _reward(loyalty)
    url = f"/v1/loyalty/rewards/{reward['reward_id']}"
    for nulled in ("name", "points_cost", "active", "description"):
        r = loyalty.patch(url, json={nulled: None}, headers=_as("admin"))  # before: a 500 from the store
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", (nulled, r.text)
    backwards = {"valid_from": "2026-12-01T00:00:00+08:00", "valid_until": "2026-11-01T00:00:00+08:00"}
    assert loyalty.patch(url, json=backwards, headers=_as("admin")).status_code == 422
    created = loyalty.post("/v1/loyalty/rewards", json={"name": "Pen", "points_cost": 10, "stock": 1, **backwards},
                           headers=_as("admin"))
    assert created.status_code == 422
    # Moving one end past the other that is already stored is refused too.
    dated = _reward(loyalty, valid_until="2026-12-01T00:00:00+08:00")
    late_start = loyalty.patch(f"/v1/loyalty/rewards/{dated['reward_id']}",
                               json={"valid_from": "2026-12-02T00:00:00+08:00"}, headers=_as("admin"))
    assert late_start.status_code == 422 and late_start.json()["error"]["code"] == "invalid_validity"
    ok = loyalty.patch(url, json={"per_member_limit": None, "valid_until": None, "add_stock": 3}, headers=_as("admin"))
    assert ok.status_code == 200
    assert (ok.json()["per_member_limit"], ok.json()["valid_until"], ok.json()["stock"]) == (None, None, 5)


def test_a_refused_redemption_binds_nothing_and_its_key_spends_once_when_the_cause_is_gone(loyalty):
    _earn(loyalty, "c_key", "200.00")
    reward = _reward(loyalty, per_member_limit=None)
    url, key = "/v1/loyalty/accounts/c_key/redemptions", {**_as("operator"), "Idempotency-Key": "till-9"}
    refused = loyalty.post(url, json={"reward_id": reward["reward_id"]}, headers=key)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "insufficient_points"
    messages.consume([purchase_msg("c_key-more", "150.00", "2026-10-21 10:00", record="c_key")],
                     deps=loyalty.service.deps)
    spent = loyalty.post(url, json={"reward_id": reward["reward_id"]}, headers=key)
    again = loyalty.post(url, json={"reward_id": reward["reward_id"]}, headers=key)
    assert (spent.status_code, spent.json()["points_balance"]) == (201, 50)  # 200 + 150 - 300
    assert again.json() == spent.json() and again.headers["Idempotent-Replayed"] == "true"
    listed = loyalty.get(url, headers=_as("reader")).json()
    assert [(x["redemption_id"], x["points"], x["status"], x["points_balance"]) for x in listed["items"]] == [
        (spent.json()["redemption_id"], 300, "completed", 50)]
    assert check_invariants(loyalty.service.store, ["c_key"]) == {"c_key": 50}


def test_rule_versions_are_readable_with_the_one_in_force_marked(loyalty):
    body = loyalty.get("/v1/loyalty/rules", headers=_as("reader"))
    assert body.status_code == 200
    (version,) = body.json()["versions"]
    assert version["in_force"] is True and version["effective_from"] == "1970-01-01T00:00:00Z"
    assert (version["earning"]["points_per_unit"], version["expiry"]["mode"], version["expiry"]["days"]) == (
        "1", "days", 365)
    assert [lv["name"] for lv in version["tiers"]["levels"]] == ["A", "B", "C"]
