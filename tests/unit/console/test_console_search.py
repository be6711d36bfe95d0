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
    assert page.status_code == 200 and services.sent == []
    # The number is searched whole in every notation a link could carry: a bare "1234" can occur by chance in
    # the page's random tokens.
    assert not any(form in page.text for form in ("1234 5678", "12345678", "1234+5678", "1234%205678"))


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


# -- issue 16: search by name ---------------------------------------------------------------------------------


def _view(cid: str, name: str) -> dict:
    return {"customer_id": cid, "phone": "138****8000", "attributes": {"name": name},
            "stats": {"home_store": "S01"}}


def _post(console, **data):
    return console.post("/customers/search", data=data, headers={"HX-Request": "true", "X-CSRF-Token": _csrf(console)})


def test_a_name_is_searched_by_name_and_its_one_customer_opened(console, services):
    _sign_in(console)
    services.answers[("GET", "/v1/customers/search")] = httpx.Response(200, json={
        "items": [_view("c_7", "张*")], "offset": 0, "limit": 21})
    r = _post(console, q=" 张 三 ", kind="auto")  # a space or a Chinese character: a name, not a card number
    assert (r.status_code, r.headers["HX-Redirect"]) == (204, "/customers/c_7")
    assert [(q.url.path, dict(q.url.params)) for q in services.sent if q.url.path.startswith("/v1/customers")] == [
        ("/v1/customers/search", {"name": "张 三", "offset": "0", "limit": "21"})]
    assert "张" not in str(r.headers)


def test_an_identifier_like_query_tries_the_identifiers_then_the_name(console, services):
    _sign_in(console)
    r = _post(console, q="LiLei", kind="auto")
    assert [q.url.path for q in services.sent if q.url.path.startswith("/v1/customers")] == [
        "/v1/customers/lookup"] * 3 + ["/v1/customers/search"]
    assert "您的门店中没有使用该标识或姓名的顾客。" in r.text
    services.sent.clear()
    r = _post(console, q="Li Lei", kind="name")
    assert [q.url.path for q in services.sent if q.url.path.startswith("/v1/customers")] == ["/v1/customers/search"]
    assert 'role="alert"' in r.text and "您的门店中没有该姓名的顾客。" in r.text


def test_a_name_several_customers_share_lists_them_a_page_at_a_time(console, services):
    _sign_in(console)
    views = [_view(f"c_{n:02d}", "L*****") for n in range(21)]  # a page of 20 and one more
    services.answers[("GET", "/v1/customers/search")] = httpx.Response(200, json={
        "items": views, "offset": 0, "limit": 21})
    r = _post(console, q="Li Lei", kind="name")
    assert r.status_code == 200 and "<html" not in r.text
    assert r.text.count('<a href="/customers/c_') == 20 and 'href="/customers/c_20"' not in r.text
    assert "同名顾客" in r.text and "L*****" in r.text and "Li Lei" not in r.text
    assert '"offset": 20' in r.text and 'hx-include="#search-form"' in r.text  # the next page is posted too
    services.answers[("GET", "/v1/customers/search")] = httpx.Response(200, json={
        "items": views[20:], "offset": 20, "limit": 21})
    r = _post(console, q="Li Lei", kind="name", offset="20")
    assert r.text.count('<a href="/customers/c_') == 1 and '"offset": 0' in r.text
    assert dict(services.sent[-1].url.params)["offset"] == "20"


def test_a_name_too_long_is_said_in_the_pages_language(console, services):
    _sign_in(console)
    services.answers[("GET", "/v1/customers/search")] = httpx.Response(422, json={"error": {
        "code": "invalid_request", "message": "query.name: String should have at most 200 characters"}})
    r = _post(console, q="李" * 201, kind="name")
    assert "姓名最多 200 个字符。" in r.text and "String should" not in r.text
