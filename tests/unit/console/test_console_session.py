"""Issue 16, the console's own rules, in process with the services answered by a recording transport: the
token stays sealed in an HttpOnly, SameSite=Strict cookie, an action without the session's CSRF header never
reaches a service, and each API status becomes the page the design names."""

from __future__ import annotations

from collections.abc import Callable

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
        self.answers: dict[tuple[str, str], httpx.Response | Callable] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        if request.url.path == "/v1/auth/token":
            return httpx.Response(200, json={"access_token": TOKEN, "token_type": "bearer", "expires_in": 900})
        answer = self.answers.get((request.method, request.url.path),
                                  httpx.Response(404, json={"error": {"code": "not_found", "message": "no such"}}))
        return answer(request) if callable(answer) else answer


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
    assert page.headers["Server-Timing"].startswith("app;dur=")
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
    # In words, into the page's message area (the page stays), and with the page's security headers.
    assert r.headers["HX-Retarget"] == "#flash" and "页面已过期，请刷新后重试。" in r.text
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    r = console.post("/alerts/a1/ack", data={"note": "x"},
                     headers={"HX-Request": "true", "X-CSRF-Token": "not-the-sessions"})
    assert r.status_code == 403 and len(services.sent) == before


@pytest.mark.parametrize(("status", "page", "words"), [
    (404, "not-found", "未找到"), (403, "forbidden", "无权访问"), (422, "error", "填写的内容未被接受。请检查后重试。")])
def test_each_api_status_is_the_page_the_design_names(console, services, status, page, words):
    _sign_in(console)
    services.answers[("GET", "/v1/customers/c_1")] = httpx.Response(
        status, json={"error": {"code": "x", "message": "a phone needs 11 digits"}})
    r = console.get("/customers/c_1")
    assert r.status_code == status and f'data-page="{page}"' in r.text and words in r.text
    assert "a phone needs 11 digits" not in r.text  # the API's English sentence, never on a Chinese page


def test_an_expired_token_at_a_service_sends_to_sign_in(console, services):
    _sign_in(console)
    services.answers[("GET", "/v1/customers/c_1")] = httpx.Response(401, json={"error": {"code": "expired",
                                                                                          "message": "expired"}})
    assert console.get("/customers/c_1").headers["location"] == "/sign-in?next=%2Fcustomers%2Fc_1"


def test_sign_in_never_redirects_off_the_site(console):
    r = console.post("/sign-in", data={"user": "mgr", "password": "pw", "next": "//evil.example/x"})
    assert r.headers["location"] == "/customers"


def _customer(services, value: httpx.Response) -> None:
    view = {"customer_id": "c_1", "phone": "139****0300", "identifiers": [], "attributes": {"name": "王芳"},
            "attribute_sources": {"name": {"channel": "wechat", "source": "wechat/oa", "event_id": "e1",
                                           "time": "2026-11-02T02:00:00+00:00"}},
            "consents": {}, "stats": {"purchase_count": 2, "purchase_days": 2, "total_spend": "1234.50",
                                      "refund_total": "0.00", "first_purchase_at": None, "last_purchase_at": None,
                                      "home_store": "S01"},
            "loyalty": None, "alerts": {"open": []}, "campaigns": [], "merged_from": [], "updated_at": "x"}
    empty = {"items": [], "next_cursor": None, "customer_id": "c_1", "points_balance": 0}
    services.answers.update({
        ("GET", "/v1/customers/c_1"): httpx.Response(200, json=view),
        ("GET", "/v1/customers/c_1/timeline"): httpx.Response(200, json=empty),
        ("GET", "/v1/alerts"): httpx.Response(200, json={"items": [], "total": 0, "offset": 0, "limit": 20}),
        ("GET", "/v1/customers/c_1/value"): value})


def test_the_customer_page_shows_value_and_clv_when_alerts_answers_and_says_so_when_it_cannot(console, services):
    _sign_in(console)
    _customer(services, httpx.Response(200, json={
        "customer_id": "c_1", "as_of": "2026-12-05", "horizon_months": 12, "monthly_discount_rate": 0.01,
        "margin": 0.3, "frequency": 1, "average_spend": "600.00", "p_alive": 0.8123, "expected_purchases": 1.5,
        "expected_average_order_value": "610.00", "expected_spend": "915.00", "clv": "262.35"}))
    page = console.get("/customers/c_1").text
    assert "¥262.35" in page and "81.2%" in page and "¥1,234.50" in page and "预计消费次数（12 个月）" in page
    assert "来自 wechat" in page  # the profile value's source
    _customer(services, httpx.Response(404, json={"error": {"code": "customer_not_found", "message": "none"}}))
    page = console.get("/customers/c_1")
    assert page.status_code == 200 and "消费记录不足，无法估算。" in page.text


def test_sign_out_needs_the_csrf_header_and_then_revokes_the_token_and_forgets_the_session(console, services):
    services.answers[("POST", "/v1/auth/sign-out")] = httpx.Response(204)
    _sign_in(console)
    assert console.post("/sign-out").status_code == 403
    page = console.get("/customers")
    csrf = page.text.split('"X-CSRF-Token": "')[1].split('"')[0]
    r = console.post("/sign-out", headers={"X-CSRF-Token": csrf, "HX-Request": "true"})
    assert (r.status_code, r.headers["HX-Redirect"]) == (204, "/sign-in") and COOKIE in r.headers["set-cookie"]
    revoked = [q for q in services.sent if q.url.path == "/v1/auth/sign-out"]
    assert [(q.method, q.headers["Authorization"]) for q in revoked] == [("POST", f"Bearer {TOKEN}")]
    assert console.get("/customers").headers["location"] == "/sign-in?next=%2Fcustomers"


def test_a_sign_out_identity_cannot_record_keeps_the_session_and_says_so(console, services):
    services.answers[("POST", "/v1/auth/sign-out")] = httpx.Response(503, json={"error": {
        "code": "unavailable", "message": "the store is busy"}})
    _sign_in(console)
    csrf = console.get("/customers").text.split('"X-CSRF-Token": "')[1].split('"')[0]
    r = console.post("/sign-out", headers={"X-CSRF-Token": csrf, "HX-Request": "true"})
    assert (r.status_code, r.headers["HX-Retarget"]) == (503, "#flash") and "set-cookie" not in r.headers
    assert "平台没有响应" in r.text
    # A token already refused (expired, or signed out elsewhere) has nothing left to revoke: the session ends.
    services.answers[("POST", "/v1/auth/sign-out")] = httpx.Response(401, json={"error": {
        "code": "token_revoked", "message": "the token was signed out; sign in again"}})
    r = console.post("/sign-out", headers={"X-CSRF-Token": csrf, "HX-Request": "true"})
    assert (r.status_code, r.headers["HX-Redirect"]) == (204, "/sign-in") and COOKIE in r.headers["set-cookie"]


def test_the_inbox_pages_on_with_its_filters_kept_and_asks_the_api_for_exactly_them(console, services):
    _sign_in(console)
    services.answers[("GET", "/v1/alerts")] = httpx.Response(200, json={"items": [], "total": 60, "offset": 25,
                                                                        "limit": 25})
    page = console.get("/alerts", params={"status": "open", "store_id": "S 01&x", "severity": "purple",
                                          "offset": 25}).text
    asked = services.sent[-1].url.params
    assert dict(asked) == {"status": "open", "store_id": "S 01&x", "offset": "25", "limit": "25"}
    assert 'href="/alerts?status=open&amp;store_id=S+01%26x&offset=0"' in page  # newer
    assert 'href="/alerts?status=open&amp;store_id=S+01%26x&offset=50"' in page  # older


def test_the_npm_packages_are_served_from_node_modules(console):
    # `make test` runs npm ci first; the later pages' charts load ECharts from here.
    for path in ("/vendor/htmx/htmx.min.js", "/vendor/echarts/echarts.min.js"):
        r = console.get(path)
        assert r.status_code == 200 and len(r.content) > 40_000, path


def test_search_tries_member_card_then_wechat_ids_for_a_non_phone_and_opens_the_match(console, services):
    _sign_in(console)

    def lookup(request: httpx.Request) -> httpx.Response:
        if "wechat_openid" in request.url.params:
            return httpx.Response(200, json={"customer_id": "c_9"})
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no"}})

    services.answers[("GET", "/v1/customers/lookup")] = lookup
    csrf = console.get("/customers").text.split('"X-CSRF-Token": "')[1].split('"')[0]
    r = console.post("/customers/search", data={"q": "oWx-abc123"}, headers={"X-CSRF-Token": csrf})
    assert (r.status_code, r.headers["location"]) == (303, "/customers/c_9")
    tried = [dict(q.url.params) for q in services.sent if q.url.path == "/v1/customers/lookup"]
    assert tried == [{"member_id": "oWx-abc123"}, {"wechat_openid": "oWx-abc123"}]
    services.sent.clear()
    r = console.post("/customers/search", data={"q": " +86 (139) 1234-5678 "}, headers={"X-CSRF-Token": csrf})
    assert [dict(q.url.params) for q in services.sent] == [{"phone": "+86 (139) 1234-5678"}]
    assert r.status_code == 404 and "您的门店中没有使用该标识的顾客。" in r.text


def test_a_token_from_before_tokens_had_ids_still_signs_out_of_the_console(console, services):
    # Identity cannot revoke such a token (it runs out as before), but the person asked to leave: the session
    # ends rather than staying open on a shared till with an error page.
    services.answers[("POST", "/v1/auth/sign-out")] = httpx.Response(422, json={"error": {
        "code": "not_a_token", "message": "only a staff token signs out"}})
    _sign_in(console)
    csrf = console.get("/customers").text.split('"X-CSRF-Token": "')[1].split('"')[0]
    r = console.post("/sign-out", headers={"X-CSRF-Token": csrf, "HX-Request": "true"})
    assert (r.status_code, r.headers["HX-Redirect"]) == (204, "/sign-in") and COOKIE in r.headers["set-cookie"]
