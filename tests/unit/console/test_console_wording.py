"""Issue 16: a service's 409 or 422 is said in the page's language: a code the console knows in its catalogue
sentence, any other naming the field at fault in a general sentence; the API's English sentence never shows."""

from __future__ import annotations

import httpx

from services.console.i18n import LANG_COOKIE
from tests.unit.console.test_console_session import _sign_in

ENGLISH = "the API's own English sentence"


def _csrf(console) -> str:
    return console.get("/customers").text.split('"X-CSRF-Token": "')[1].split('"')[0]


def _refuse(services, method: str, path: str, status: int, code: str, details=None) -> None:
    error = {"code": code, "message": ENGLISH, **({"details": details} if details is not None else {})}
    services.answers[(method, path)] = httpx.Response(status, json={"error": error})


def test_a_known_409_is_the_catalogues_sentence_in_chinese_and_in_english(console, services):
    _sign_in(console)
    _refuse(services, "POST", "/v1/alerts/a1/ack", 409, "alert_resolved")
    headers = {"HX-Request": "true", "X-CSRF-Token": _csrf(console)}
    r = console.post("/alerts/a1/ack", data={"note": ""}, headers=headers)
    assert (r.status_code, r.headers["HX-Retarget"]) == (409, "#flash")
    assert "该提醒已被解决。请刷新提醒列表。" in r.text and ENGLISH not in r.text
    console.cookies.set(LANG_COOKIE, "en")
    r = console.post("/alerts/a1/ack", data={"note": ""}, headers=headers)
    assert "This alert was resolved already. Reload the inbox." in r.text and ENGLISH not in r.text


def test_a_422_with_details_names_each_field_by_its_forms_label(console, services):
    _sign_in(console)
    _refuse(services, "POST", "/v1/alerts/a1/resolve", 422, "reason_text_required",
            [{"loc": "body.reason_text", "msg": "reason 'other' needs a reason_text"}])
    headers = {"HX-Request": "true", "X-CSRF-Token": _csrf(console)}
    r = console.post("/alerts/a1/resolve", data={"note": "called", "reason": "other"}, headers=headers)
    assert r.status_code == 422 and "选择“其他”时，请用文字说明原因。" in r.text and ENGLISH not in r.text
    # A validation error (a code for any field): the fields at fault by their labels, in the page's language.
    _refuse(services, "PATCH", "/v1/campaigns/cp1", 422, "invalid_request",
            [{"loc": "body.audience.recency_days.min", "msg": "Input should be greater than or equal to 0"},
             {"loc": "body.ends_at", "msg": "ends_at must be after starts_at"}])
    r = console.post("/campaigns/cp1/audience", data={"recency_days_min": "-1"}, headers=headers)
    assert r.status_code == 422 and "距上次购买天数、结束时间：该值未被接受。请更正后重试。" in r.text
    assert "greater than" not in r.text and "must be after" not in r.text and ENGLISH not in r.text


def test_an_unknown_code_says_a_general_sentence_naming_the_field_or_none(console, services):
    _sign_in(console)
    headers = {"HX-Request": "true", "X-CSRF-Token": _csrf(console)}
    _refuse(services, "POST", "/v1/alerts/a1/ack", 422, "brand_new_code", [{"loc": "body.shelf_code", "msg": "x"}])
    r = console.post("/alerts/a1/ack", data={"note": ""}, headers=headers)
    assert "shelf_code：该值未被接受。请更正后重试。" in r.text and ENGLISH not in r.text
    _refuse(services, "POST", "/v1/alerts/a1/ack", 422, "brand_new_code", [{"loc": "body", "msg": "x"}])
    r = console.post("/alerts/a1/ack", data={"note": ""}, headers=headers)
    assert "填写的内容未被接受。请检查后重试。" in r.text and ENGLISH not in r.text
    _refuse(services, "POST", "/v1/alerts/a1/ack", 409, "brand_new_conflict")
    r = console.post("/alerts/a1/ack", data={"note": ""}, headers=headers)
    assert "当前状态下无法执行此操作。请刷新页面后重试。" in r.text and ENGLISH not in r.text
    # A whole page (no htmx) says it the same way.
    _refuse(services, "GET", "/v1/customers/c_1", 409, "brand_new_conflict")
    r = console.get("/customers/c_1")
    assert r.status_code == 409 and "当前状态下无法执行此操作。" in r.text and ENGLISH not in r.text


def test_a_search_refused_for_another_reason_than_the_phone_is_said_in_chinese(console, services):
    _sign_in(console)
    _refuse(services, "GET", "/v1/customers/lookup", 422, "one_identifier")
    r = console.post("/customers/search", data={"q": "M-123", "kind": "member_id"},
                     headers={"HX-Request": "true", "X-CSRF-Token": _csrf(console)})
    assert "请只填写一个要查找的标识。" in r.text and ENGLISH not in r.text
