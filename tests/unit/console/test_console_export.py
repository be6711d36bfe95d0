"""Issue 16 review: a customer's export is an audited act, so it is posted with the session's CSRF token (a
plain form, since the browser downloads the answer) and its reason, free text, never sits in an address."""

from __future__ import annotations

import re

import httpx

from tests.unit.console.test_console_session import _sign_in

REASON = "王芳 asked by phone 13912345678"


def test_the_export_is_posted_with_the_forms_csrf_token_and_downloads_the_json(console, services):
    _sign_in(console)
    services.answers[("GET", "/v1/customers/c_1/export")] = httpx.Response(200, json={"customer_id": "c_1"})
    services.answers[("GET", "/v1/audit")] = httpx.Response(200, json={"items": [], "next_cursor": None})
    form = console.get("/admin/privacy").text
    assert re.search(r'<form method="post" action="/admin/privacy/export">', form)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    r = console.post("/admin/privacy/export", data={"customer_id": "c_1", "reason": REASON, "csrf": csrf})
    assert r.status_code == 200 and r.json() == {"customer_id": "c_1"}
    assert r.headers["content-disposition"] == 'attachment; filename="export-c_1.json"'
    assert services.sent[-1].url.params["reason"] == REASON


def test_an_export_without_the_sessions_token_or_by_address_never_reaches_identity(console, services):
    _sign_in(console)
    services.sent.clear()
    assert console.post("/admin/privacy/export", data={"customer_id": "c_1", "csrf": "forged"}).status_code == 403
    assert console.get("/admin/privacy/export", params={"customer_id": "c_1", "reason": REASON}).status_code in (
        404, 405)
    assert [q for q in services.sent if q.url.path.endswith("/export")] == []
