"""Issue 16 review: the console's own refusals are pages in words, never FastAPI's JSON (which echoes what was
sent back, a phone included), and a sign-in posted from another site is refused before identity sees it."""

from __future__ import annotations

import httpx

from tests.unit.console.test_console_session import _sign_in

PHONE = "13912345678"


def test_a_malformed_page_address_is_the_error_page_in_words_not_json(console, services):
    _sign_in(console)
    r = console.get("/alerts", params={"offset": "-1"})
    assert r.status_code == 422 and 'data-page="error"' in r.text and "请求无效" in r.text
    assert r.headers["content-type"].startswith("text/html") and "detail" not in r.text


def test_a_malformed_action_says_so_in_the_message_area_without_echoing_what_was_typed(console, services):
    _sign_in(console)
    csrf = console.get("/customers").text.split('"X-CSRF-Token": "')[1].split('"')[0]
    r = console.post("/customers/search", data={"q": PHONE * 30},
                     headers={"HX-Request": "true", "X-CSRF-Token": csrf})
    assert r.status_code == 422 and r.headers["HX-Retarget"] == "#flash" and PHONE not in r.text
    assert "请求无效" in r.text


def test_a_sign_in_posted_from_another_site_is_refused_before_identity_sees_it(console, services):
    r = console.post("/sign-in", data={"user": "mgr", "password": "pw"},
                     headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and services.sent == [] and "crm_console" not in r.headers.get("set-cookie", "")
    r = console.post("/sign-in", data={"user": "mgr", "password": "pw"},
                     headers={"Origin": "null", "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403 and services.sent == []
    # The console's own page: Chromium sends Origin "null" under its no-referrer policy, and same-origin; https
    # at a TLS-terminating proxy in front of it.
    for headers in ({"Origin": "null", "Sec-Fetch-Site": "same-origin"}, {"Origin": "http://testserver"},
                    {"Origin": "https://testserver"}):
        r = console.post("/sign-in", data={"user": "mgr", "password": "pw"}, headers=headers)
        assert r.status_code == 303, headers


def test_a_redelivered_webhooks_status_from_the_api_is_swapped_in_as_text_not_markup(console, services):
    _sign_in(console)
    services.answers[("POST", "/v1/webhooks/w1/deliveries/d1/redeliver")] = httpx.Response(
        200, json={"status": '<img src=x onerror="alert(1)">'})
    csrf = console.get("/customers").text.split('"X-CSRF-Token": "')[1].split('"')[0]
    r = console.post("/admin/webhooks/w1/deliveries/d1/redeliver", headers={"HX-Request": "true",
                                                                              "X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.text == '&lt;img src=x onerror=&#34;alert(1)&#34;&gt;'


def test_an_address_that_does_not_take_the_method_is_a_page_in_words_not_json(console, services):
    _sign_in(console)
    r = console.get("/admin/privacy/export", params={"customer_id": "c_1"})
    assert r.status_code == 405 and 'data-page="error"' in r.text and "请返回并使用页面上的按钮。" in r.text
    assert r.headers["content-type"].startswith("text/html") and "detail" not in r.text


def test_a_services_rate_limit_is_said_as_such_not_as_the_platform_being_down(console, services):
    _sign_in(console)
    services.answers[("GET", "/v1/customers/c_1")] = httpx.Response(
        429, headers={"Retry-After": "30"}, json={"error": {"code": "rate_limited", "message": "slow down"}})
    r = console.get("/customers/c_1")
    assert r.status_code == 429 and 'data-page="error"' in r.text and "请求过于频繁" in r.text
    assert "平台没有响应" not in r.text
    csrf = r.text.split('"X-CSRF-Token": "')[1].split('"')[0]
    services.answers[("POST", "/v1/alerts/al_1/ack")] = services.answers[("GET", "/v1/customers/c_1")]
    r = console.post("/alerts/al_1/ack", headers={"HX-Request": "true", "X-CSRF-Token": csrf})
    assert r.status_code == 429 and r.headers["HX-Retarget"] == "#flash" and "请求过于频繁" in r.text
