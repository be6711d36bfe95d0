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


def test_an_action_whose_session_expired_signs_in_again_without_returning_to_the_actions_address(console):
    # After sign-in the browser GETs ?next=; an action's address takes only POST (a 405 page).
    r = console.post("/alerts/a1/ack", headers={"HX-Request": "true"})
    assert (r.status_code, r.headers["HX-Redirect"]) == (204, "/sign-in")
    r = console.post("/customers/search", data={"q": "x"})
    assert r.headers["location"] == "/sign-in"


def test_a_panel_whose_session_expired_returns_to_its_page_not_to_the_bare_panel(console):
    r = console.get("/customers/c_1/timeline", params={"cursor": "x"},
                    headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/customers/c_1"})
    assert (r.status_code, r.headers["HX-Redirect"]) == (204, "/sign-in?next=%2Fcustomers%2Fc_1")
