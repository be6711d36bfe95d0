"""Loyalty's staff notes as callers see them (issue 12 review, D3): loyalty never learns a customer's names, so
below admin a note is withheld (its length only), an admin sees it scrubbed of phones and dates, and whole
only on a reveal, which is audited; channel ids in ledger causes are masked."""

from __future__ import annotations

import json

from services.loyalty import messages
from tests.integration.loyalty.conftest import purchase_msg

NOTE = "Wang Fang (born March 12, 1985) asked, call 135_1234_0001"
KEYS = {"admin": "k-admin", "operator": "k-op", "reader": "k-read"}


def _as(role: str) -> dict:
    return {"Authorization": f"Bearer {KEYS[role]}"}


def test_a_staff_note_shows_no_personal_data_below_admin_and_whole_only_on_an_audited_reveal(loyalty):
    messages.consume([purchase_msg("wx-13512340001-1", "500.00", "2026-10-20 10:00", record="c_n")],
                     deps=loyalty.service.deps)
    r = loyalty.post("/v1/loyalty/rewards", json={"name": "Mug", "points_cost": 100, "stock": 2}, headers=_as("admin"))
    reward = r.json()["reward_id"]
    adj = loyalty.post("/v1/loyalty/accounts/c_n/adjustments", json={"points": 5, "reason": NOTE},
                       headers=_as("operator"))
    assert adj.status_code == 201, adj.text
    red = loyalty.post("/v1/loyalty/accounts/c_n/redemptions", json={"reward_id": reward}, headers=_as("operator"))
    assert red.status_code == 201, red.text
    cancel = loyalty.post(f"/v1/loyalty/redemptions/{red.json()['redemption_id']}/cancel", json={"reason": NOTE},
                          headers=_as("operator"))
    assert cancel.status_code == 200, cancel.text
    marker = f"[note withheld: {len(NOTE)} characters]"
    scrubbed = "Wang Fang (born ****-**-**) asked, call *******0001"

    def reasons(role: str, **params) -> list[str]:
        ledger = loyalty.get("/v1/loyalty/accounts/c_n/ledger", params=params, headers=_as(role)).json()["items"]
        reds = loyalty.get("/v1/loyalty/accounts/c_n/redemptions", params=params, headers=_as(role)).json()
        return sorted([e["cause"]["reason"] for e in ledger if "reason" in e["cause"]]
                      + [x["cancel_reason"] for x in reds["items"]])

    for role in ("reader", "operator"):
        assert reasons(role) == [marker] * 3
        shown = json.dumps(loyalty.get("/v1/loyalty/accounts/c_n/ledger", headers=_as(role)).json())
        assert "13512340001" not in shown and "Wang" not in shown, shown
        assert loyalty.get("/v1/loyalty/accounts/c_n/ledger", params={"reveal": "true"},
                           headers=_as(role)).status_code == 403
    statement = loyalty.get("/v1/loyalty/accounts/c_n/statements/2026-11", headers=_as("reader")).json()
    assert "Wang" not in json.dumps(statement) and "1234_0001" not in json.dumps(statement)
    assert reasons("admin") == [scrubbed] * 3
    before = len(loyalty.published)
    assert reasons("admin", reveal="true") == [NOTE] * 3
    audits = [m for m in loyalty.published[before:] if b"reveal." in m.value]
    assert len(audits) == 2  # the ledger's and the redemptions' reveal
