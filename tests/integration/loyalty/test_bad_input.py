"""Loyalty's routes against what a careless client or an attacker sends (issue 10, findings 4 and 5): each
answers a 4xx naming what is wrong, never a 500, and a key sent through two ids of one member spends once."""

from __future__ import annotations

import base64
import json

from services.loyalty import messages
from tests.integration.loyalty.conftest import merge_msg, purchase_msg
from tests.integration.loyalty.invariants import check_invariants
from tests.integration.loyalty.test_api import _as, _earn, _reward

HUGE = 2**63


def _error(response) -> tuple[int, str, set[str]]:
    err = response.json()["error"]
    return response.status_code, err["code"], {d["loc"] for d in err.get("details") or [] if "loc" in d}


def test_offsets_beyond_a_64_bit_integer_are_422_not_500(loyalty):
    _earn(loyalty, "c_off", "100.00")
    for url in ("/v1/loyalty/rewards", "/v1/loyalty/accounts/c_off/redemptions"):
        r = loyalty.get(url, params={"offset": HUGE}, headers=_as("reader"))
        assert _error(r) == (422, "invalid_request", {"query.offset"}), url
        assert loyalty.get(url, params={"offset": 10_000_000}, headers=_as("reader")).status_code == 200


def test_reward_integers_and_dates_beyond_what_the_store_holds_are_422(loyalty):
    base = {"name": "Mug", "points_cost": 100, "stock": 1}
    r = loyalty.post("/v1/loyalty/rewards", json={**base, "per_member_limit": HUGE}, headers=_as("admin"))
    assert _error(r) == (422, "invalid_request", {"body.per_member_limit"})
    r = loyalty.post("/v1/loyalty/rewards", json={**base, "valid_until": "0034-12-26T11:52:07Z"}, headers=_as("admin"))
    assert _error(r) == (422, "invalid_request", {"body.valid_until"})
    reward = _reward(loyalty)
    r = loyalty.patch(f"/v1/loyalty/rewards/{reward['reward_id']}", json={"per_member_limit": HUGE},
                      headers=_as("admin"))
    assert _error(r) == (422, "invalid_request", {"body.per_member_limit"})
    r = loyalty.patch(f"/v1/loyalty/rewards/{reward['reward_id']}", json={"valid_from": "9999-12-31T23:59:59Z"},
                      headers=_as("admin"))
    assert _error(r) == (422, "invalid_request", {"body.valid_from"})
    assert loyalty.get("/v1/loyalty/rewards", headers=_as("reader")).json()["items"] == [reward]


def test_statements_outside_1900_to_2100_are_422(loyalty):
    _earn(loyalty, "c_st", "100.00")
    for month in ("9999-12", "0001-01", "1899-12", "2101-01", "2026-13", "2026-1"):
        r = loyalty.get(f"/v1/loyalty/accounts/c_st/statements/{month}", headers=_as("reader"))
        assert _error(r) == (422, "invalid_request", {"path.month"}), month
    assert loyalty.get("/v1/loyalty/accounts/c_st/statements/2100-12", headers=_as("reader")).status_code == 200
    assert loyalty.get("/v1/loyalty/accounts/c_st/statements/1900-01", headers=_as("reader")).status_code == 200


def test_a_forged_or_garbage_ledger_cursor_is_invalid_cursor(loyalty):
    _earn(loyalty, "c_cur", "100.00", n=3)
    page = loyalty.get("/v1/loyalty/accounts/c_cur/ledger", params={"limit": 1}, headers=_as("reader")).json()
    assert page["next_cursor"] is not None
    forged = [base64.urlsafe_b64encode(json.dumps(v).encode()).decode()
              for v in (["\udfff", "x"], [1, 2], {"a": 1}, ["a"], 7)]
    for cursor in ("garbage", "!!!", "é", *forged):
        r = loyalty.get("/v1/loyalty/accounts/c_cur/ledger", params={"cursor": cursor}, headers=_as("reader"))
        assert _error(r) == (422, "invalid_cursor", set()), cursor
    nxt = loyalty.get("/v1/loyalty/accounts/c_cur/ledger", params={"cursor": page["next_cursor"]},
                      headers=_as("reader"))
    assert nxt.status_code == 200 and len(nxt.json()["items"]) == 2


def test_one_key_through_a_survivor_and_its_merged_away_id_redeems_once(loyalty):
    deps = loyalty.service.deps
    messages.consume([purchase_msg("s-1", "400.00", "2026-10-20 10:00", record="c_surv"),
                      purchase_msg("m-1", "400.00", "2026-10-20 11:00", record="c_gone")], deps=deps)
    messages.consume([merge_msg("c_surv", "c_gone", ["c_gone"], "2026-10-25 10:00")], deps=deps)
    reward = _reward(loyalty, stock=5, per_member_limit=None)
    key = {**_as("operator"), "Idempotency-Key": "till-42"}
    body = {"reward_id": reward["reward_id"]}
    first = loyalty.post("/v1/loyalty/accounts/c_surv/redemptions", json=body, headers=key)
    second = loyalty.post("/v1/loyalty/accounts/c_gone/redemptions", json=body, headers=key)
    assert first.status_code == 201 and first.json()["points_balance"] == 500
    assert second.status_code == 201 and second.json() == first.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    other = loyalty.post("/v1/loyalty/accounts/c_gone/redemptions", json={**body, "quantity": 2}, headers=key)
    assert _error(other) == (409, "idempotency_key_reused", set())
    got = loyalty.get(f"/v1/loyalty/rewards/{reward['reward_id']}", headers=_as("reader")).json()
    assert (got["stock"], got["redeemed"]) == (4, 1)
    listed = loyalty.get("/v1/loyalty/accounts/c_gone/redemptions", headers=_as("reader")).json()["items"]
    assert [x["redemption_id"] for x in listed] == [first.json()["redemption_id"]]
    assert check_invariants(loyalty.service.store, ["c_surv"]) == {"c_surv": 500}


def test_a_key_bound_through_an_id_before_its_merge_still_spends_once_after(loyalty):
    deps = loyalty.service.deps
    messages.consume([purchase_msg("s-2", "400.00", "2026-10-20 10:00", record="c_surv2"),
                      purchase_msg("m-2", "400.00", "2026-10-20 11:00", record="c_gone2")], deps=deps)
    reward = _reward(loyalty, stock=5, per_member_limit=None)
    key = {**_as("operator"), "Idempotency-Key": "till-43"}
    body = {"reward_id": reward["reward_id"]}
    first = loyalty.post("/v1/loyalty/accounts/c_gone2/redemptions", json=body, headers=key)
    assert first.status_code == 201
    messages.consume([merge_msg("c_surv2", "c_gone2", ["c_gone2"], "2026-10-25 10:00", merge_id="m_2")], deps=deps)
    again = loyalty.post("/v1/loyalty/accounts/c_surv2/redemptions", json=body, headers=key)
    assert again.status_code == 201 and again.json() == first.json()
    got = loyalty.get(f"/v1/loyalty/rewards/{reward['reward_id']}", headers=_as("reader")).json()
    assert (got["stock"], got["redeemed"]) == (4, 1)


def test_one_adjustment_key_through_a_survivor_and_its_merged_away_id_adjusts_once(loyalty):
    deps = loyalty.service.deps
    messages.consume([purchase_msg("s-3", "400.00", "2026-10-20 10:00", record="c_surv3"),
                      purchase_msg("m-3", "400.00", "2026-10-20 11:00", record="c_gone3")], deps=deps)
    messages.consume([merge_msg("c_surv3", "c_gone3", ["c_gone3"], "2026-10-25 10:00", merge_id="m_3")], deps=deps)
    key = {**_as("operator"), "Idempotency-Key": "fix-7"}
    body = {"points": -100, "reason": "goodwill reversal"}
    first = loyalty.post("/v1/loyalty/accounts/c_gone3/adjustments", json=body, headers=key)
    second = loyalty.post("/v1/loyalty/accounts/c_surv3/adjustments", json=body, headers=key)
    assert first.status_code == 201 and first.json()["points_balance"] == 700
    assert second.status_code == 201 and second.json() == first.json()
    assert check_invariants(loyalty.service.store, ["c_surv3"]) == {"c_surv3": 700}
