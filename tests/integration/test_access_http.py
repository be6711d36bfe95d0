"""Access through the real HTTP apps of the four services (issue 12, H1): staff sign-in for a signed token
every service accepts, expired and forged tokens, scoped keys reaching the caller, a key file edited while
the services run, the stores registry at GET /v1/stores, and staff names shown as "who did it"."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import jwt
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from services.alerts.app import create_app as alerts_app
from services.alerts.config import AlertsConfig
from services.campaigns.app import create_app as campaigns_app
from services.campaigns.config import CampaignsSettings
from services.identity import messages as identity_messages
from services.identity.app import create_app as identity_app
from services.loyalty import messages as loyalty_messages
from services.loyalty.app import create_app as loyalty_app
from services.loyalty.config import LoyaltySettings
from shared.access.principals import Caller
from shared.access.revocations import PolledRevocations
from shared.access.scope import Scope
from shared.access.staff import StaffAccount, add_account, hash_password
from shared.access.tokens import Tokens
from shared.http.api import caller_dep, service_api
from shared.http.ratelimit import RateLimits
from shared.settings import Settings
from shared.streaming.batch import Incoming
from tests.integration.loyalty.conftest import purchase_msg
from tests.unit.identity.support import purchase

SECRET = "token-secret-for-the-access-tests-0123456789"
PASSWORD = "correct horse battery staple"
ADMIN = "k-admin-0001"
STORES = """store_id,name,region,timezone,parent,meal_periods
SH-001,Jing'an,east,Asia/Shanghai,,lunch=10:30-15:00;dinner=16:30-22:30
SH-002,Xuhui,east,Asia/Shanghai,SH-001,
"""
# One reader route of each service, and the operator-only dead letters every service has.
READER_ROUTES = {"identity": "/v1/identity/summary", "loyalty": "/v1/loyalty/tiers",
                 "alerts": "/v1/alerts/rules", "campaigns": "/v1/campaigns"}


def _settings(tmp: Path, **overrides) -> Settings:
    return Settings(**{"_env_file": None, "data_dir": str(tmp), "api_keys": f"{ADMIN}:admin",
                       "pseudonym_secret": "access-tests-pseudonym-key", "token_secret": SECRET,
                       "staff_file": str(tmp / "staff.json"), "stores_file": str(tmp / "stores.csv"),
                       "timezone": "Asia/Shanghai", **overrides})


class Platform:
    """The four services' apps in this process over SQLite files in one data dir; nothing is published."""

    def __init__(self, tmp: Path, **overrides) -> None:
        (tmp / "stores.csv").write_text(STORES)
        for user, role, scope in (("li.wei", "reader", Scope("store", "SH-001")), ("ops.zhang", "operator", None)):
            add_account(tmp / "staff.json", StaffAccount(user, hash_password(PASSWORD), role, scope or Scope(),
                                                         display_name=user.title()))
        self.settings = _settings(tmp, **overrides)
        self.sent: list = []
        self.identity = identity_app(self.settings, publish=self.sent.extend)
        self.loyalty = loyalty_app(self.settings, publish=self.sent.extend, config=LoyaltySettings(_env_file=None))
        self.apps = {
            "identity": self.identity.api,
            "loyalty": self.loyalty.api,
            "alerts": alerts_app(self.settings, publish=self.sent.extend, config=AlertsConfig(_env_file=None)).api,
            "campaigns": campaigns_app(self.settings, publish=self.sent.extend,
                                       config=CampaignsSettings(_env_file=None)).api,
        }
        self.http = {name: TestClient(app) for name, app in self.apps.items()}

    def sign_in(self, user: str, password: str):
        return self.http["identity"].post("/v1/auth/token", data={"username": user, "password": password})


@pytest.fixture
def platform(tmp_path) -> Platform:
    platform = Platform(tmp_path)
    _revocations_from_identity(platform)  # as deployed: the services reach identity's list
    return platform


def _bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def test_a_staff_account_signs_in_for_a_token_every_service_accepts_with_its_role(platform):
    r = platform.sign_in("li.wei", PASSWORD)
    assert r.status_code == 200
    body = r.json()
    assert (sorted(body), body["token_type"], body["expires_in"]) == (
        ["access_token", "expires_in", "token_type"], "bearer", 900)
    claims = jwt.decode(body["access_token"], SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["role"], claims["scope"], claims["name"], claims["exp"] - claims["iat"]) == (
        "li.wei", "reader", "store=SH-001", "li.wei", 900)
    for name, route in READER_ROUTES.items():
        assert platform.http[name].get(route, headers=_bearer(body["access_token"])).status_code == 200, name
        r = platform.http[name].get("/v1/deadletters", headers=_bearer(body["access_token"]))
        assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden"), name
    operator = platform.sign_in("ops.zhang", PASSWORD).json()["access_token"]
    for name in READER_ROUTES:
        assert platform.http[name].get("/v1/deadletters", headers=_bearer(operator)).status_code == 200, name


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(platform):
    wrong = platform.sign_in("li.wei", "not the password at all")
    nobody = platform.sign_in("nobody.here", PASSWORD)
    assert wrong.status_code == nobody.status_code == 401
    assert wrong.json() == nobody.json() == {"error": {"code": "invalid_credentials",
                                                       "message": "wrong user name or password"}}
    # The OAuth2 password form is the only body this route takes: JSON is refused by FastAPI's form check.
    r = platform.http["identity"].post("/v1/auth/token", json={"username": "li.wei", "password": PASSWORD})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_request")


def test_an_expired_or_forged_token_is_refused_by_every_service(platform):
    caller = Caller("staff:li.wei", "reader", Scope("store", "SH-001"), name="li.wei")
    expired = Tokens(SECRET.encode(), ttl_s=900, clock=lambda: time.time() - 901).issue(caller)
    forged = Tokens(b"someone else's secret key, long enough", ttl_s=900).issue(caller)
    real = platform.sign_in("li.wei", PASSWORD).json()["access_token"]
    header, payload, signature = real.split(".")
    promoted = jwt.encode({**jwt.decode(real, SECRET, algorithms=["HS256"]), "role": "admin"}, "x",
                          algorithm="HS256").split(".")[1]
    tampered = f"{header}.{promoted}.{signature}"
    for name, route in READER_ROUTES.items():
        http = platform.http[name]
        r = http.get(route, headers=_bearer(expired))
        assert (r.status_code, r.json()["error"]) == (401, {"code": "token_expired",
                                                            "message": "the token has expired; sign in again"}), name
        for bad in (forged, tampered, real[:-4] + "AAAA"):
            r = http.get(route, headers=_bearer(bad))
            assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_token"), name


def test_the_sign_in_route_has_its_own_budget_per_address(tmp_path):
    platform = Platform(tmp_path, sign_in_rate_limit="3/minute", sign_in_rate_limit_burst=3)
    # Hashing a password takes real time; the budget's clock stands still so Retry-After is exact.
    platform.apps["identity"].state.rate_limits = RateLimits(platform.settings, clock=lambda: 1000.0)
    answers = [platform.sign_in("li.wei", "wrong password here").status_code for _ in range(3)]
    r = platform.sign_in("li.wei", PASSWORD)
    assert answers == [401, 401, 401]
    assert (r.status_code, r.json()["error"]["code"], r.json()["error"]["details"]["budget"]) == (
        429, "rate_limited", "sign_ins")
    assert int(r.headers["Retry-After"]) == 20


def test_get_stores_lists_the_registry_and_the_stores_events_named_that_it_lacks(platform):
    http = platform.http["identity"]
    r = http.post("/v1/events", headers=_bearer(ADMIN), json=[
        purchase("p1", {"phone": "+8613800138000"}, "88.00", store_id="SH-001"),
        purchase("p2", {"phone": "+8613800138001"}, "18.00", store_id="XX-404"),
    ])
    assert r.status_code == 202
    batch = [Incoming(o.value, o.topic, 0, i, list(o.headers), o.key) for i, o in enumerate(platform.sent)
             if ".channel." in o.topic]
    identity_messages.consume(batch, deps=platform.identity.deps)
    reader = platform.sign_in("li.wei", PASSWORD).json()["access_token"]
    # A purchase at a store the registry lacks is processed like any other.
    assert http.get("/v1/identity/summary", headers=_bearer(ADMIN)).json()["customers"] == 2
    r = http.get("/v1/stores", headers=_bearer(reader))
    assert r.status_code == 200
    assert r.json() == {"items": [
        {"store_id": "SH-001", "name": "Jing'an", "region": "east", "timezone": "Asia/Shanghai", "parent": None,
         "meal_periods": {"lunch": "10:30-15:00", "dinner": "16:30-22:30"}},
        {"store_id": "SH-002", "name": "Xuhui", "region": "east", "timezone": "Asia/Shanghai", "parent": "SH-001",
         "meal_periods": {}},
    ], "unregistered": ["XX-404"]}
    # The registry is re-read when its file changes, without a restart.
    stores = Path(platform.settings.stores_file)
    stores.write_text(STORES + "XX-404,Pop-up,east,Asia/Shanghai,,\n")
    st = stores.stat()
    os.utime(stores, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    deadline = time.monotonic() + 5
    while True:  # the registry looks at its file at most once a second
        body = http.get("/v1/stores", headers=_bearer(reader)).json()
        if body["unregistered"] == [] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert ([s["store_id"] for s in body["items"]], body["unregistered"]) == (["SH-001", "SH-002", "XX-404"], [])
    assert http.get("/v1/stores").status_code == 401


def _echo_app(settings: Settings) -> TestClient:
    r = APIRouter()

    @r.get("/whoami")
    def whoami(caller: Caller = caller_dep("reader")) -> dict:
        return {"role": caller.role, "scope": str(caller.scope), "name": caller.name}

    return TestClient(service_api("echo", settings, [r], {}, CollectorRegistry()))


def test_a_keys_scope_reaches_the_caller_and_an_edited_key_file_takes_effect_without_a_restart(tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("k-store-0001:reader@store=SH-001\nk-east-0001:operator@region=east\n")
    http = _echo_app(_settings(tmp_path, api_keys="k-env-0001:admin", api_keys_file=str(keys), stores_file=""))
    who = {k: http.get("/v1/whoami", headers=_bearer(k)).json() for k in ("k-store-0001", "k-east-0001", "k-env-0001")}
    assert [(w["role"], w["scope"]) for w in who.values()] == [
        ("reader", "store=SH-001"), ("operator", "region=east"), ("admin", "company")]
    assert all(w["name"].startswith("api-key-") and len(w["name"]) == 16 for w in who.values())

    keys.write_text("k-store-0002:reader@store=SH-002\n")
    st = keys.stat()
    os.utime(keys, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    r = http.get("/v1/whoami", headers=_bearer("k-store-0001"))
    assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_key")
    assert http.get("/v1/whoami", headers=_bearer("k-store-0002")).json()["scope"] == "store=SH-002"
    assert http.get("/v1/whoami", headers=_bearer("k-env-0001")).json()["role"] == "admin"


def test_a_staff_name_is_who_did_it_on_the_loyalty_ledger(platform):
    loyalty_messages.consume([purchase_msg("c_named-p", "50.00", "2026-10-01 10:00", record="c_named")],
                             deps=platform.loyalty.deps)
    operator = platform.sign_in("ops.zhang", PASSWORD).json()["access_token"]
    loyalty = platform.http["loyalty"]
    r = loyalty.post("/v1/loyalty/accounts/c_named/adjustments", headers=_bearer(operator),
                     json={"points": 25, "reason": "goodwill after complaint"})
    assert r.status_code == 201
    items = loyalty.get("/v1/loyalty/accounts/c_named/ledger", headers=_bearer(operator)).json()["items"]
    # The note itself is withheld below admin (loyalty cannot tell a name in it); who wrote it is shown.
    assert [(e["cause"]["reason"], e["cause"]["by"]) for e in items if e["rule"] == "manual"] == [
        ("[note withheld: 24 characters]", "ops.zhang")]


def _revocations_from_identity(platform: Platform, **overrides) -> None:
    """The other services fetch identity's list of signed-out tokens from the in-process identity app."""
    settings = platform.settings.model_copy(update=overrides)
    for name in ("loyalty", "alerts", "campaigns"):
        auth = platform.apps[name].state.auth
        auth.revocations = PolledRevocations(settings, tokens=auth.tokens,
                                             transport=httpx.ASGITransport(app=platform.identity.api))


def test_a_signed_out_token_is_refused_by_every_service_and_other_sessions_stay(platform):
    _revocations_from_identity(platform, token_revocation_poll_s=0)
    copied, other = (platform.sign_in("li.wei", PASSWORD).json()["access_token"] for _ in range(2))
    for name, route in READER_ROUTES.items():
        assert platform.http[name].get(route, headers=_bearer(copied)).status_code == 200, name
    r = platform.http["identity"].post("/v1/auth/sign-out", headers=_bearer(copied))
    assert (r.status_code, r.content) == (204, b"")
    for name, route in READER_ROUTES.items():
        r = platform.http[name].get(route, headers=_bearer(copied))
        assert (r.status_code, r.json()) == (401, {"error": {"code": "token_revoked", "message":
                                                             "the token was signed out; sign in again"}}), name
        # Signing out is of one token: the same person's other session goes on.
        assert platform.http[name].get(route, headers=_bearer(other)).status_code == 200, name
    again = platform.http["identity"].post("/v1/auth/sign-out", headers=_bearer(copied))
    assert (again.status_code, again.json()["error"]["code"]) == (401, "token_revoked")
    jti = jwt.decode(copied, SECRET, algorithms=["HS256"])["jti"]
    audit = platform.http["identity"].get("/v1/audit", params={"action": "auth.sign_out"}, headers=_bearer(ADMIN))
    assert [(e["actor"], e["role"], e["scope"], e["target"]) for e in audit.json()["items"]] == [
        ("li.wei", "reader", "store=SH-001", jti)]
    listed = platform.http["identity"].get("/v1/auth/revocations", headers=_bearer(ADMIN)).json()["items"]
    assert [i["token_id"] for i in listed] == [jti]
    assert listed[0]["expires_at"] == jwt.decode(copied, SECRET, algorithms=["HS256"])["exp"]


def test_only_a_token_signs_out_and_only_company_admins_read_the_list(platform):
    r = platform.http["identity"].post("/v1/auth/sign-out", headers=_bearer(ADMIN))
    assert (r.status_code, r.json()["error"]["code"]) == (422, "not_a_token")
    reader = platform.sign_in("li.wei", PASSWORD).json()["access_token"]
    r = platform.http["identity"].get("/v1/auth/revocations", headers=_bearer(reader))
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")


def test_a_service_refuses_a_signed_out_token_once_its_copy_is_older_than_the_poll_interval(platform):
    _revocations_from_identity(platform, token_revocation_poll_s=60)
    now = [1_000.0]
    auth = platform.apps["loyalty"].state.auth
    auth.revocations._clock = lambda: now[0]
    token = platform.sign_in("li.wei", PASSWORD).json()["access_token"]
    loyalty = platform.http["loyalty"]
    assert loyalty.get("/v1/loyalty/tiers", headers=_bearer(token)).status_code == 200  # the list fetched: empty
    assert platform.http["identity"].post("/v1/auth/sign-out", headers=_bearer(token)).status_code == 204
    now[0] += 59.9
    assert loyalty.get("/v1/loyalty/tiers", headers=_bearer(token)).status_code == 200  # the copy is 59.9 s old
    now[0] += 0.1
    r = loyalty.get("/v1/loyalty/tiers", headers=_bearer(token))
    assert (r.status_code, r.json()["error"]["code"]) == (401, "token_revoked")
    # Identity gone: the last list stays in force.
    auth.revocations._transport = httpx.ASGITransport(app=FastAPI())
    now[0] += 61
    r = loyalty.get("/v1/loyalty/tiers", headers=_bearer(token))
    assert (r.status_code, r.json()["error"]["code"]) == (401, "token_revoked")


class _Recording(httpx.AsyncBaseTransport):
    """Identity's app as a transport, keeping the Authorization header of each fetch."""

    def __init__(self, app) -> None:
        self.inner, self.bearers = httpx.ASGITransport(app=app), []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.bearers.append(request.headers["authorization"].removeprefix("Bearer "))
        return await self.inner.handle_async_request(request)


def test_the_token_a_service_fetches_the_list_with_opens_that_list_and_nothing_else(platform):
    recording = _Recording(platform.identity.api)
    auth = platform.apps["loyalty"].state.auth
    auth.revocations = PolledRevocations(platform.settings.model_copy(update={"token_revocation_poll_s": 0}),
                                         tokens=auth.tokens, transport=recording)
    token = platform.sign_in("li.wei", PASSWORD).json()["access_token"]
    assert platform.http["loyalty"].get("/v1/loyalty/tiers", headers=_bearer(token)).status_code == 200
    poller = recording.bearers[-1]
    assert platform.http["identity"].get("/v1/auth/revocations", headers=_bearer(poller)).status_code == 200
    # Sent in every fetch, a few times a second: anyone who reads one must not hold a company-wide admin.
    for name, route in {**READER_ROUTES, "identity": "/v1/audit"}.items():
        r = platform.http[name].get(route, headers=_bearer(poller))
        assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_token"), name
    r = platform.http["identity"].post("/v1/auth/sign-out", headers=_bearer(poller))
    assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_token")


def test_a_service_that_never_got_the_list_refuses_tokens_until_it_does_api_keys_go_on(platform):
    token = platform.sign_in("li.wei", PASSWORD).json()["access_token"]
    assert platform.http["identity"].post("/v1/auth/sign-out", headers=_bearer(token)).status_code == 204
    # Loyalty (re)started while identity does not answer: it holds no list, so it cannot tell a signed-out token.
    auth = platform.apps["loyalty"].state.auth
    auth.revocations = PolledRevocations(platform.settings.model_copy(update={"token_revocation_poll_s": 60}),
                                         tokens=auth.tokens, transport=httpx.ASGITransport(app=FastAPI()))
    loyalty = platform.http["loyalty"]
    for _ in range(2):  # the failed fetch does not count as a list on the next request either
        r = loyalty.get("/v1/loyalty/tiers", headers=_bearer(token))
        assert (r.status_code, r.json()["error"]["code"]) == (503, "token_check_unavailable")
        assert "Retry-After" in r.headers
    assert loyalty.get("/v1/loyalty/tiers", headers=_bearer(ADMIN)).status_code == 200
    auth.revocations._transport = httpx.ASGITransport(app=platform.identity.api)
    r = loyalty.get("/v1/loyalty/tiers", headers=_bearer(token))
    assert (r.status_code, r.json()["error"]["code"]) == (401, "token_revoked")
