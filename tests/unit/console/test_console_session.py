"""Issue 16, the console's own rules, in process with the services answered by a recording transport: the
token stays sealed in an HttpOnly, SameSite=Strict cookie, an action without the session's CSRF header never
reaches a service, and each API status becomes the page the design names."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient

from services.console.app import create_app
from services.console.session import COOKIE
from shared.settings import Settings

TOKEN = "staff-token-abc123"


class Services:
    """What the four APIs answer, and every request the console sent them."""

    def __init__(self) -> None:
        self.sent: list[httpx.Request] = []
        self.answers: dict[tuple[str, str], httpx.Response] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        if request.url.path == "/v1/auth/token":
            return httpx.Response(200, json={"access_token": TOKEN, "token_type": "bearer", "expires_in": 900})
        return self.answers.get((request.method, request.url.path),
                                httpx.Response(404, json={"error": {"code": "not_found", "message": "no such"}}))


@pytest.fixture
def services() -> Services:
    return Services()


@pytest.fixture
def console(services):
    settings = Settings(_env_file=None, token_secret="x" * 40)
    with TestClient(create_app(settings, transport=httpx.MockTransport(services)), follow_redirects=False) as c:
        yield c


def _sign_in(console) -> None:
    r = console.post("/sign-in", data={"user": "mgr", "password": "pw", "next": "/alerts"})
    assert (r.status_code, r.headers["location"]) == (303, "/alerts")


def test_sign_in_keeps_the_token_sealed_in_an_httponly_strict_cookie(console, services):
    _sign_in(console)
    cookie = console.cookies.get(COOKIE)
    assert TOKEN not in cookie
    r = console.post("/sign-in", data={"user": "mgr", "password": "pw"})
    assert "httponly" in r.headers["set-cookie"].lower() and "samesite=strict" in r.headers["set-cookie"].lower()
    services.answers[("GET", "/v1/alerts")] = httpx.Response(200, json={"items": [], "total": 0, "offset": 0,
                                                                        "limit": 25})
    page = console.get("/alerts")
    assert page.status_code == 200 and TOKEN not in page.text
    assert services.sent[-1].headers["Authorization"] == f"Bearer {TOKEN}"


def test_a_tampered_cookie_or_none_sends_to_sign_in(console):
    assert console.get("/customers").headers["location"] == "/sign-in?next=%2Fcustomers"
    console.cookies.set(COOKIE, "gAAAAAforged")
    assert console.get("/customers").headers["location"] == "/sign-in?next=%2Fcustomers"


def test_an_action_without_the_sessions_csrf_header_never_reaches_a_service(console, services):
    _sign_in(console)
    before = len(services.sent)
    r = console.post("/alerts/a1/ack", data={"note": "x"}, headers={"HX-Request": "true"})
    assert r.status_code == 403 and len(services.sent) == before
    r = console.post("/alerts/a1/ack", data={"note": "x"},
                     headers={"HX-Request": "true", "X-CSRF-Token": "not-the-sessions"})
    assert r.status_code == 403 and len(services.sent) == before


@pytest.mark.parametrize(("status", "page", "words"), [
    (404, "not-found", "未找到"), (403, "forbidden", "无权访问"), (422, "error", "a phone needs 11 digits")])
def test_each_api_status_is_the_page_the_design_names(console, services, status, page, words):
    _sign_in(console)
    services.answers[("GET", "/v1/customers/c_1")] = httpx.Response(
        status, json={"error": {"code": "x", "message": "a phone needs 11 digits"}})
    r = console.get("/customers/c_1")
    assert r.status_code == status and f'data-page="{page}"' in r.text and words in r.text


def test_an_expired_token_at_a_service_sends_to_sign_in(console, services):
    _sign_in(console)
    services.answers[("GET", "/v1/customers/c_1")] = httpx.Response(401, json={"error": {"code": "expired",
                                                                                          "message": "expired"}})
    assert console.get("/customers/c_1").headers["location"] == "/sign-in?next=%2Fcustomers%2Fc_1"


def test_sign_in_never_redirects_off_the_site(console):
    r = console.post("/sign-in", data={"user": "mgr", "password": "pw", "next": "//evil.example/x"})
    assert r.headers["location"] == "/customers"
