"""Issue 16 review: acknowledging or resolving an alert replaces its row (and the button that had focus), so the
page says what happened in a polite live region and puts keyboard focus on the new row."""

from __future__ import annotations

import httpx
import pytest

from tests.unit.console.test_console_session import _sign_in

ROW = {"alert_id": "al_1", "customer_id": "c_1", "type": "complaint", "severity": "red", "store_id": "S01",
       "action": "call", "opened_at": "2026-12-05T01:00:00+00:00", "sla_due_at": "2026-12-05T05:00:00+00:00",
       "sla_breached": False, "repeats": 0}


@pytest.mark.parametrize(("move", "status", "words"), [("ack", "acknowledged", "提醒已确认。"),
                                                        ("resolve", "resolved", "提醒已解决。")])
def test_an_alerts_new_row_is_announced_and_takes_focus(console, services, move, status, words):
    _sign_in(console)
    services.answers[("POST", f"/v1/alerts/al_1/{move}")] = httpx.Response(200, json={**ROW, "status": status})
    page = console.get("/customers").text
    assert 'id="announce" role="status" aria-live="polite"' in page
    csrf = page.split('"X-CSRF-Token": "')[1].split('"')[0]
    r = console.post(f"/alerts/al_1/{move}", data={"note": "called back"},
                     headers={"HX-Request": "true", "X-CSRF-Token": csrf})
    assert f'<div id="announce" hx-swap-oob="innerHTML">{words}</div>' in r.text
    assert 'id="alert-al_1" tabindex="-1" data-focus' in r.text
