"""Issue 16 review: no ?next= that a browser reads as another site survives sign-in or the language switch."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("target", ["/\\evil.example/x", "/\t/evil.example", "/\\/evil.example", "/\n/evil.example"])
def test_sign_in_refuses_a_next_a_browser_reads_as_another_site(console, target):
    r = console.post("/sign-in", data={"user": "mgr", "password": "pw", "next": target})
    assert r.headers["location"] == "/customers"
    assert console.get("/lang/en", params={"next": target}).headers["location"] == "/customers"


def test_sign_in_still_returns_to_a_page_of_this_site(console):
    r = console.post("/sign-in", data={"user": "mgr", "password": "pw", "next": "/alerts?status=open"})
    assert r.headers["location"] == "/alerts?status=open"
