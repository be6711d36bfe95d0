"""Issue 16, the console's redemption and admin rules in process, the services answered by a recording transport:
each confirmation carries its own Idempotency-Key to loyalty, loyalty's refusals are said in words, the nav's
admin link follows the token's role, and a merge keeps the customer chosen and merges the other."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from fastapi.testclient import TestClient

from services.console.app import create_app
from shared.access.keys import parse_scope
from shared.access.principals import Caller
from shared.access.scope import COMPANY
from shared.access.tokens import Tokens
from shared.settings import Settings

SETTINGS = Settings(_env_file=None, token_secret="x" * 40)
ACCOUNT = {"customer_id": "c1", "points_balance": 500, "tier": None, "debt": 0, "expiring": []}
REWARD = {"reward_id": "rw1", "name": "Mask", "description": "", "points_cost": 200, "stock": 3, "redeemed": 0,
          "per_member_limit": None, "valid_from": None, "valid_until": None, "active": True, "created_at": "x"}


def _token(role: str) -> str:
    scope = parse_scope("store=S01", where="test") if role == "store-admin" else COMPANY
    return Tokens(SETTINGS.token_key(), ttl_s=900).issue(Caller("staff:u", role.removeprefix("store-"), scope,
                                                                name="u"))


class Services:
    """What the APIs answer (by method and path), and every request the console sent."""

    def __init__(self) -> None:
        self.sent: list[httpx.Request] = []
        self.answers: dict[tuple[str, str], httpx.Response] = {}
        self.role = "operator"

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        if request.url.path == "/v1/auth/token":
            return httpx.Response(200, json={"access_token": _token(self.role), "expires_in": 900})
        return self.answers.get((request.method, request.url.path),
                                httpx.Response(404, json={"error": {"code": "not_found", "message": "no such"}}))


@pytest.fixture
def services() -> Services:
    s = Services()
    s.answers[("GET", "/v1/loyalty/rewards/rw1")] = httpx.Response(200, json=REWARD)
    s.answers[("GET", "/v1/loyalty/accounts/c1")] = httpx.Response(200, json=ACCOUNT)
    s.answers[("GET", "/v1/loyalty/rewards")] = httpx.Response(200, json={"items": [REWARD], "offset": 0,
                                                                          "limit": 11})
    return s


@pytest.fixture
def console(services):
    with TestClient(create_app(SETTINGS, transport=httpx.MockTransport(services)), follow_redirects=False) as c:
        c.cookies.set("crm_lang", "en")
        yield c


def _sign_in(console) -> dict[str, str]:
    assert console.post("/sign-in", data={"user": "u", "password": "pw"}).status_code == 303
    page = console.get("/sign-in").text  # any page carries the session's CSRF token for htmx
    csrf = json.loads(re.search(r"hx-headers='([^']+)'", page).group(1))["X-CSRF-Token"]
    return {"X-CSRF-Token": csrf, "HX-Request": "true"}


def test_each_confirmation_carries_a_fresh_key_and_the_redemption_sends_it_as_the_idempotency_key(console,
                                                                                                   services):
    headers = _sign_in(console)
    keys = []
    for _ in range(2):
        page = console.get("/customers/c1/rewards/rw1/confirm", headers=headers)
        assert "Balance after: 300 points." in page.text
        keys.append(re.search(r'name="key" value="(\w+)"', page.text).group(1))
    assert keys[0] != keys[1]
    done = {"redemption_id": "rd1", "customer_id": "c1", "record_id": "c1", "reward_id": "rw1", "quantity": 1,
            "points": 200, "status": "completed", "created_at": "x", "by": "u", "cancelled_at": None,
            "cancelled_by": None, "cancel_reason": None, "points_balance": 300}
    services.answers[("POST", "/v1/loyalty/accounts/c1/redemptions")] = httpx.Response(201, json=done)
    r = console.post("/customers/c1/redemptions", data={"reward_id": "rw1", "key": keys[0]}, headers=headers)
    assert r.status_code == 200 and r.headers["HX-Trigger"] == "redeemed"
    assert 'id="points-balance" data-points="300" hx-swap-oob="outerHTML"' in r.text
    [sent] = [s for s in services.sent if s.method == "POST" and s.url.path.endswith("/redemptions")]
    assert sent.headers["Idempotency-Key"] == keys[0]
    assert json.loads(sent.content) == {"reward_id": "rw1", "quantity": 1}


@pytest.mark.parametrize(("code", "words"), [
    ("insufficient_points", "The balance does not cover this reward. Choose a cheaper reward."),
    ("out_of_stock", "This reward is out of stock. Choose another or ask head office to add stock."),
    ("per_member_limit", "This member has redeemed this reward as often as allowed."),
    ("reward_not_available", "This reward cannot be redeemed now (inactive or outside its dates)."),
])
def test_each_refusal_of_loyalty_is_said_in_words_with_what_to_do(console, services, code, words):
    headers = _sign_in(console)
    services.answers[("POST", "/v1/loyalty/accounts/c1/redemptions")] = httpx.Response(
        409, json={"error": {"code": code, "message": "in the API's words"}})
    r = console.post("/customers/c1/redemptions", data={"reward_id": "rw1", "key": "k1"}, headers=headers)
    assert r.status_code == 200 and f"<p class=\"flash\" role=\"alert\" data-refused>{words}</p>" in r.text


@pytest.mark.parametrize(("role", "shown"), [("admin", True), ("store-admin", False), ("operator", False),
                                             ("reader", False)])
def test_the_admin_link_is_in_the_nav_for_a_company_wide_admin_only(console, services, role, shown):
    services.role = role
    _sign_in(console)
    page = console.get("/sign-in").text
    assert ('href="/admin"' in page) is shown


def test_the_admin_pages_are_the_forbidden_page_when_the_api_says_403(console, services):
    _sign_in(console)
    services.answers[("GET", "/v1/audit")] = httpx.Response(403, json={"error": {"code": "forbidden",
                                                                                   "message": "admin only"}})
    r = console.get("/admin")
    assert r.status_code == 403 and 'data-page="forbidden"' in r.text


def test_a_merge_keeps_the_customer_chosen_and_merges_the_other_into_it(console, services):
    headers = _sign_in(console)
    services.answers[("POST", "/v1/customers/c2/merge")] = httpx.Response(
        200, json={"merge_id": "m1", "survivor_id": "c2", "merged_id": "c1", "records": ["c1"]})
    r = console.post("/admin/conflicts/k1/merge", data={"survivor": "c2", "pair": "c1 c2", "reason": "same card"},
                     headers=headers)
    assert r.status_code == 200 and 'data-status="resolved"' in r.text
    assert json.loads(services.sent[-1].content) == {"customer_id": "c1", "conflict_id": "k1", "reason": "same card"}
    # A survivor outside the pair, or no reason, never reaches identity.
    before = len(services.sent)
    assert console.post("/admin/conflicts/k1/merge", data={"survivor": "c9", "pair": "c1 c2", "reason": "x"},
                        headers=headers).status_code == 422
    assert console.post("/admin/conflicts/k1/merge", data={"survivor": "c1", "pair": "c1 c2", "reason": " "},
                        headers=headers).status_code == 422
    assert len(services.sent) == before
