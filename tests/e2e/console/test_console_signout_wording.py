"""Issue 16, in a real browser against the platform as ``crm up`` starts it: signing out revokes the session's
token, so a copy taken before (the token itself, or the sealed cookie) gets 401 from every service and no page of
the console; and a Chinese page says a service's 409 and 422 in Chinese, never in the API's English."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from services.console.session import COOKIE, Session, sealer
from shared.settings import Settings
from tests.e2e.console.conftest import PASSWORD, sign_in, wait_until
from tests.integration.flows.support import new_id

pytestmark = [pytest.mark.broker, pytest.mark.slow]
SHANGHAI = ZoneInfo("Asia/Shanghai")
# One reader route of each service.
ROUTES = {"identity": "/v1/identity/summary", "loyalty": "/v1/loyalty/tiers", "alerts": "/v1/alerts/rules",
          "campaigns": "/v1/campaigns"}


def _sign_in(page, platform, user: str, shoot) -> None:
    sign_in(page, platform, user, PASSWORD, shoot)


def _status(platform, service: str, token: str) -> tuple[int, str | None]:
    with platform.api(service, token) as api:
        r = api.get(ROUTES[service])
    return r.status_code, (r.json().get("error") or {}).get("code") if r.status_code != 200 else None


def test_sign_out_revokes_the_token_a_copy_then_gets_401_from_every_service(platform, page, browser, shoot):
    platform.add_staff("mgr-out", role="operator", store="S01")
    _sign_in(page, platform, "mgr-out", shoot)
    cookie = next(c for c in page.context.cookies() if c["name"] == COOKIE)
    # The copy: the sealed cookie as it left the browser, and the token in it (the platform's own key opens it).
    secret = (platform.data_dir / "token.key").read_text().strip()
    copied = Session.open(cookie["value"], sealer(Settings(_env_file=None, token_secret=secret))).token
    assert {name: _status(platform, name, copied) for name in ROUTES} == {name: (200, None) for name in ROUTES}

    page.get_by_role("button", name="退出登录").click()
    expect(page.locator("[data-page=sign-in]")).to_be_visible()
    shoot(page, "signed-out")
    # Identity refuses it at once; the others once their copy of identity's list is renewed (1 s by default).
    assert _status(platform, "identity", copied) == (401, "token_revoked")
    for name in ROUTES:
        wait_until(lambda n=name: _status(platform, n, copied) == (401, "token_revoked"), timeout=15,
                   what=f"{name} refusing the signed-out token")
    # The copied cookie opens nothing either: the console's first call gets the 401 and asks to sign in.
    other = browser.new_context()
    try:
        other.add_cookies([{k: cookie[k] for k in ("name", "value", "domain", "path")}])
        tab = other.new_page()
        tab.goto(platform.url + "/alerts")
        expect(tab.locator("[data-page=sign-in]")).to_be_visible()
        shoot(tab, "copied-cookie-signed-out")
    finally:
        other.close()
    # Signing in again works: the sign-out was of that token, not of the person.
    _sign_in(page, platform, "mgr-out", shoot)


def test_a_chinese_page_says_a_409_and_a_422_in_chinese(platform, page, shoot):
    platform.add_staff("marketer-words", role="operator")
    now = datetime.now(SHANGHAI)
    with platform.api("campaigns") as campaigns:
        r = campaigns.post("/v1/campaigns", json={
            "name": "words", "objective": "promotion", "channel": "sms", "audience": {"cities": [new_id("City")]},
            "starts_at": (now + timedelta(days=1)).isoformat(), "ends_at": (now + timedelta(days=9)).isoformat()})
        assert r.status_code == 201, r.text
        cid = r.json()["campaign_id"]
    _sign_in(page, platform, "marketer-words", shoot)
    page.goto(f"{platform.url}/campaigns/{cid}")
    expect(page.locator("#preview")).to_be_visible()
    shoot(page, "draft")
    flash = page.locator("#flash .flash")

    # 422: a probability above 1; campaigns answers invalid_request naming body.audience.p_alive.max.
    page.locator("#a-p_alive-max").fill("5")
    page.locator("#a-p_alive-max").press("Tab")
    expect(flash).to_contain_text("仍活跃概率（0–1）：该值未被接受。请更正后重试。")
    assert "valid" not in flash.inner_text() and "Input should" not in flash.inner_text()
    shoot(page, "refused-422")
    page.locator("#flash [data-dismiss]").click()
    expect(flash).to_have_count(0)

    # 409: the campaign was cancelled meanwhile (another person, another tab); editing its audience is refused.
    with platform.api("campaigns") as campaigns:
        assert campaigns.post(f"/v1/campaigns/{cid}/cancel").status_code == 200
    page.locator("#a-p_alive-max").fill("0.9")
    page.locator("#a-p_alive-max").press("Tab")
    expect(flash).to_contain_text("只有草稿状态的活动才能编辑。")
    assert "drafts" not in flash.inner_text()
    shoot(page, "refused-409")
