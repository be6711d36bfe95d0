"""Issue 16 review: the customer page names each profile field in the page's language (it showed the API's
keys, "name", "birthday", in English on the Chinese page)."""

from __future__ import annotations

import httpx

from tests.unit.console.test_console_session import _customer, _sign_in


def test_the_profiles_fields_are_named_in_the_pages_language(console, services):
    _sign_in(console)
    _customer(services, httpx.Response(404, json={"error": {"code": "customer_not_found", "message": "none"}}))
    page = console.get("/customers/c_1").text
    assert "<dt>姓名</dt><dd>王芳" in page and "<dt>name</dt>" not in page
    console.cookies.set("crm_lang", "en")
    page = console.get("/customers/c_1").text
    assert "<dt>Full name</dt><dd>王芳" in page
