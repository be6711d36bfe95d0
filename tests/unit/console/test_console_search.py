"""Issue 16 review: a phone typed into the customer search is posted, never put in an address (the browser's
history, a proxy's log, the language links), and the page says in its message area when no one matched."""

from __future__ import annotations

import httpx

from tests.unit.console.test_console_session import _sign_in

PHONE = "+86 139 1234 5678"


def _csrf(console) -> str:
    return console.get("/customers").text.split('"X-CSRF-Token": "')[1].split('"')[0]


def test_the_search_posts_the_phone_and_opens_the_match_without_it_in_any_address(console, services):
    _sign_in(console)
    services.answers[("GET", "/v1/customers/lookup")] = httpx.Response(200, json={"customer_id": "c_9"})
    form = console.get("/customers").text
    assert 'hx-post="/customers/search"' in form and 'method="get"' not in form
    r = console.post("/customers/search", data={"q": PHONE, "kind": "auto"},
                     headers={"HX-Request": "true", "X-CSRF-Token": _csrf(console)})
    assert (r.status_code, r.headers["HX-Redirect"]) == (204, "/customers/c_9")
    assert [dict(q.url.params) for q in services.sent if q.url.path == "/v1/customers/lookup"] == [
        {"phone": PHONE.strip()}]
    # An old link with the phone in it looks nothing up and does not repeat the phone in the page's links.
    services.sent.clear()
    page = console.get("/customers", params={"q": PHONE})
    assert page.status_code == 200 and services.sent == [] and "1234" not in page.text


def test_a_search_that_finds_no_one_says_so_in_the_pages_message_area(console, services):
    _sign_in(console)
    r = console.post("/customers/search", data={"q": PHONE},
                     headers={"HX-Request": "true", "X-CSRF-Token": _csrf(console)})
    assert r.status_code == 200 and 'role="alert"' in r.text and "您的门店中没有使用该标识的顾客。" in r.text
    assert "<html" not in r.text  # a partial for #search-message, not a page


def test_a_phone_identity_cannot_read_is_said_in_the_pages_language(console, services):
    _sign_in(console)
    services.answers[("GET", "/v1/customers/lookup")] = httpx.Response(422, json={"error": {
        "code": "invalid_phone", "message": "data.identity.phone: phone is not a valid number"}})
    r = console.post("/customers/search", data={"q": "139 1234"},
                     headers={"HX-Request": "true", "X-CSRF-Token": _csrf(console)})
    assert "这不是可用的手机号码" in r.text and "phone is not" not in r.text
