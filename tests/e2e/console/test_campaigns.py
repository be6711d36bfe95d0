"""Issue 16, the console's campaigns pages in a real browser against the platform as ``crm up`` starts it: a
marketer creates a campaign, watches the audience's preview counts and exclusions change as the builder changes,
launches it, and the results page shows the lift, its 95% interval and the daily converters, as charts and in
figures, exactly as the campaigns API gives them; the CSV downloads are the API's; pausing and the list's status
filter work in place."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from services.console import i18n
from tests.e2e.console.catalogue import extracted
from tests.e2e.console.conftest import PASSWORD, sign_in, wait_until
from tests.integration.flows.support import event, new_id, new_phone, purchase

pytestmark = [pytest.mark.broker, pytest.mark.slow]
SHANGHAI = ZoneInfo("Asia/Shanghai")
CROWD = 21  # customers in the campaign's city; the first has no SMS consent


@pytest.fixture(scope="module")
def crowd(platform):
    """Customers of a city no other test uses, each with a purchase; all but the first consent to SMS. Settled in
    campaigns (a throw-away campaign's preview counts them all) before the browser opens."""
    city, phones = new_id("City"), [new_phone() for _ in range(CROWD)]
    before = datetime.now(SHANGHAI).replace(microsecond=0) - timedelta(days=3)
    events = []
    for i, phone in enumerate(phones):
        who = {"phone": phone}
        if i:
            events.append(event("crm.consent", before, who, source="web/shop", purpose="sms", granted=True))
        events += [event("crm.profile", before, who, source="wechat/mini", city=city),
                   purchase(who, before + timedelta(hours=1), "100.00", store="S01")]
    with platform.api("identity") as identity:
        r = identity.post("/v1/events", json=events)
        assert r.status_code == 202, r.text
    now = datetime.now(SHANGHAI)
    with platform.api("campaigns") as campaigns:
        probe = campaigns.post("/v1/campaigns", json={
            "name": "probe", "objective": "promotion", "channel": "sms", "audience": {"cities": [city]},
            "starts_at": (now + timedelta(days=1)).isoformat(), "ends_at": (now + timedelta(days=9)).isoformat()})
        assert probe.status_code == 201, probe.text
        pid = probe.json()["campaign_id"]
        wait_until(lambda: campaigns.get(f"/v1/campaigns/{pid}/preview").json()["members"] == CROWD - 1,
                   what="campaigns knows every customer's city and consent")
        assert campaigns.post(f"/v1/campaigns/{pid}/cancel").status_code == 200
    platform.add_staff("marketer", role="operator")
    return {"city": city, "phones": phones}


def _sign_in(page, platform, shoot) -> None:
    sign_in(page, platform, "marketer", PASSWORD, shoot)


def _untranslated(page, locale: str) -> list[str]:
    """Source messages of several words shown as written in a page whose catalogue translates them."""
    text, catalogue = page.locator("body").inner_text(), i18n.translations(locale)
    return sorted(m for m in extracted() if " " in m and "%(" not in m and catalogue.gettext(m) != m and m in text)


def _value(page, selector: str, attribute: str = "data-value") -> str | None:
    return page.locator(selector).get_attribute(attribute)


def _expect_preview(page, preview: dict) -> None:
    """The preview panel shows the API's preview, figure by figure."""
    for key in ("matched", "members", "treatment", "control", "touches"):
        expect(page.locator(f"#preview [data-preview={key}]")).to_have_attribute("data-value", str(preview[key]))
        expect(page.locator(f"#preview [data-preview={key}]")).to_have_text(f"{preview[key]:,}")
    for reason, n in preview["excluded"].items():
        expect(page.locator(f"#preview [data-excluded={reason}]")).to_have_attribute("data-value", str(n))


def test_a_marketer_creates_previews_launches_and_reads_the_results_the_api_gives(platform, crowd, page, shoot):
    _sign_in(page, platform, shoot)
    page.get_by_role("navigation", name="主导航").get_by_role("link", name="营销活动").click()
    expect(page.locator("[data-page=campaign-list]")).to_be_visible()
    shoot(page, "list")
    page.get_by_role("link", name="新建活动").click()
    expect(page.locator("[data-page=campaign-new]")).to_be_visible()
    name = new_id("Spring")
    page.get_by_label("名称").fill(name)
    page.get_by_label("渠道").select_option("sms")
    page.get_by_label("对照组比例（%）").fill("50")
    page.get_by_label("城市").fill(crowd["city"])
    shoot(page, "new")
    page.get_by_role("button", name="创建草稿").click()
    expect(page.locator("[data-page=campaign]")).to_be_visible()
    campaign_id = page.locator("[data-page=campaign]").get_attribute("data-campaign")
    token = platform.token("marketer")
    with platform.api("campaigns", token) as api:
        defined = api.get(f"/v1/campaigns/{campaign_id}").json()
        assert (defined["name"], defined["status"], defined["audience"]["cities"], Decimal(defined["control_share"])) \
            == (name, "draft", [crowd["city"]], Decimal("0.5"))
        preview = api.get(f"/v1/campaigns/{campaign_id}/preview").json()
    # Everyone in the city matches; the one without consent is left out and counted as such.
    assert (preview["matched"], preview["excluded"]["no_consent"], preview["members"]) == (CROWD, 1, CROWD - 1)
    _expect_preview(page, preview)
    shoot(page, "draft-preview")
    assert _untranslated(page, "zh_Hans_CN") == []

    # The builder is live: a criterion no one meets empties the preview in place; taking it off brings it back.
    builder = page.locator("[data-panel=audience] form")
    builder.get_by_label("购买次数 最小值").fill("2")
    builder.get_by_label("购买次数 最小值").press("Tab")
    expect(page.locator("#preview [data-preview=matched]")).to_have_attribute("data-value", "0")
    shoot(page, "draft-preview-narrowed")
    with platform.api("campaigns", token) as api:
        assert api.get(f"/v1/campaigns/{campaign_id}").json()["audience"]["frequency"]["min"] == 2
    builder.get_by_label("购买次数 最小值").fill("")
    builder.get_by_label("购买次数 最小值").press("Tab")
    expect(page.locator("#preview [data-preview=matched]")).to_have_attribute("data-value", str(CROWD))
    _expect_preview(page, preview)

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="立即启动").click()
    expect(page.locator("#campaign")).to_have_attribute("data-status", "running")
    with platform.api("campaigns", token) as api:
        launched = api.get(f"/v1/campaigns/{campaign_id}").json()
    assert launched["status"] == "running" and launched["launch"]["members"] == CROWD - 1
    for key in ("matched", "members", "treatment", "control", "touches"):
        expect(page.locator(f"[data-launch={key}]")).to_have_text(f"{launched['launch'][key]:,}")
    shoot(page, "launched")

    # After the launch every other consenting customer buys (and the one without consent, who is no member).
    at = datetime.now(SHANGHAI).replace(microsecond=0) + timedelta(seconds=1)
    buyers = [crowd["phones"][i] for i in range(0, CROWD, 2)]
    with platform.api("identity") as identity:
        r = identity.post("/v1/events", json=[purchase({"phone": p}, at, "250.00", store="S01") for p in buyers])
        assert r.status_code == 202, r.text
    with platform.api("campaigns", token) as api:
        def settled():
            o = api.get(f"/v1/campaigns/{campaign_id}/results").json()["overall"]
            return o["treatment"]["converters"] + o["control"]["converters"] == len(buyers) - 1
        wait_until(settled, what="every member's purchase attributed")
        results = api.get(f"/v1/campaigns/{campaign_id}/results").json()
        csv = {n: api.get(f"/v1/campaigns/{campaign_id}/{n}.csv").text for n in ("results", "daily")}

    page.locator("#campaign").get_by_role("link", name="效果").click()
    expect(page.locator("[data-page=campaign-results]")).to_be_visible()
    page.wait_for_function("() => window.echarts && echarts.getInstanceByDom(document.getElementById('lift-chart'))"
                           " && echarts.getInstanceByDom(document.getElementById('daily-chart'))")
    shoot(page, "results")
    assert _untranslated(page, "zh_Hans_CN") == []
    o, lift = results["overall"], results["overall"]["lift"]
    assert lift is not None
    i18n.use("zh_Hans_CN")
    for group in ("treatment", "control"):
        row = page.locator(f"[data-table=groups] tr[data-group={group}]")
        expect(row.locator("[data-field=size]")).to_have_text(f"{o[group]['size']:,}")
        expect(row.locator("[data-field=converters]")).to_have_text(f"{o[group]['converters']:,}")
        assert float(row.locator("[data-field=conversion_rate]").get_attribute("data-value")) == \
            o[group]["conversion_rate"]
        expect(row.locator("[data-field=revenue]")).to_have_text(i18n.money(o[group]["revenue"]))
    assert float(_value(page, "[data-lift=absolute]")) == lift["absolute"]
    assert (float(_value(page, "[data-lift=ci]", "data-low")), float(_value(page, "[data-lift=ci]", "data-high"))) \
        == (lift["ci_low"], lift["ci_high"])
    expect(page.locator("[data-lift=absolute]")).to_have_text(f"{i18n.number(lift['absolute'] * 100, 2)} 个百分点")
    expect(page.locator("[data-lift=ci]")).to_have_text(
        f"{i18n.number(lift['ci_low'] * 100, 2)} 至 {i18n.number(lift['ci_high'] * 100, 2)} 个百分点")
    expect(page.locator("[data-field=incremental_revenue]")).to_have_text(i18n.money(results["incremental_revenue"]))
    # The charts plot exactly those figures: the lift's point and interval, and each day's new and returning
    # converters of each group.
    charted = page.evaluate("""() => {
        const series = id => echarts.getInstanceByDom(document.getElementById(id)).getOption().series;
        const daily = echarts.getInstanceByDom(document.getElementById('daily-chart')).getOption();
        return {lift: series('lift-chart').map(s => [s.id, s.data]),
                days: daily.xAxis[0].data, daily: daily.series.map(s => [s.id, s.data])};
    }""")
    assert charted["lift"] == [["ci", [[0, lift["ci_low"], lift["ci_high"]]]], ["lift", [[lift["absolute"], 0]]]]
    days = sorted({d["day"] for d in results["daily"]})
    assert days and charted["days"] == days
    want = {f"{g}_{k}": [sum(d[f"{k}_converters"] for d in results["daily"] if d["day"] == day and d["group"] == g)
                         for day in days] for g in ("treatment", "control") for k in ("new", "returning")}
    assert dict(charted["daily"]) == want
    assert sum(sum(v) for v in want.values()) == len(buyers) - 1

    # The downloads are the API's own CSVs, through the console (the browser holds no token).
    for n in ("results", "daily"):
        href = page.locator(f"a[data-csv={n}]").get_attribute("href")
        got = page.request.get(platform.url + href)
        assert got.status == 200 and got.headers["content-type"].startswith("text/csv")
        assert got.text() == csv[n]

    # Breakdowns switch in place.
    page.get_by_label("按").select_option("age_band")
    expect(page).to_have_url(f"{platform.url}/campaigns/{campaign_id}/results?by=age_band")
    segments = [s["segment"] for s in results["breakdowns"]["age_band"]]
    expect(page.locator("[data-table=breakdown] tbody tr")).to_have_count(len(segments))
    shoot(page, "results-by-age-band")

    # Pause from the campaign's page, then find it under the list's status filter.
    page.get_by_role("link", name="返回活动").click()
    expect(page.locator("[data-page=campaign]")).to_be_visible()
    page.get_by_role("button", name="暂停").click()
    expect(page.locator("#campaign")).to_have_attribute("data-status", "paused")
    shoot(page, "paused")
    with platform.api("campaigns", token) as api:
        assert api.get(f"/v1/campaigns/{campaign_id}").json()["status"] == "paused"
    page.goto(platform.url + "/campaigns")
    page.get_by_label("状态").select_option("paused")
    expect(page).to_have_url(f"{platform.url}/campaigns?status=paused")
    expect(page.locator(f"tr[data-campaign={campaign_id}]")).to_have_attribute("data-status", "paused")
    expect(page.locator("#campaign-results tbody tr:not([data-status=paused])")).to_have_count(0)
    shoot(page, "list-paused")


def test_an_invalid_campaign_is_refused_in_words_and_the_form_stays(platform, crowd, page, shoot):
    _sign_in(page, platform, shoot)
    page.goto(platform.url + "/campaigns/new")
    page.get_by_label("名称").fill(new_id("Backwards"))
    page.get_by_label("结束时间").fill("2020-01-01T10:00")  # before the start
    page.get_by_role("button", name="创建草稿").click()
    # The field at fault by its label, in the page's language (never the API's "ends_at must be after starts_at").
    expect(page.locator("#flash .flash")).to_contain_text("结束时间：该值未被接受。请更正后重试。")
    expect(page.locator("[data-page=campaign-new]")).to_be_visible()
    shoot(page, "new-refused")
    # Put right, it is created; scheduled, and taken back to draft, in place.
    page.locator("#flash [data-dismiss]").click()
    page.get_by_label("结束时间").fill((datetime.now(SHANGHAI) + timedelta(days=20)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="创建草稿").click()
    expect(page.locator("[data-page=campaign]")).to_be_visible()
    campaign_id = page.locator("[data-page=campaign]").get_attribute("data-campaign")
    page.get_by_role("button", name="排期").click()
    expect(page.locator("#campaign")).to_have_attribute("data-status", "scheduled")
    expect(page.locator("#preview [data-preview=matched]")).to_be_visible()  # a scheduled campaign still previews
    shoot(page, "scheduled")
    with platform.api("campaigns", platform.token("marketer")) as api:
        assert api.get(f"/v1/campaigns/{campaign_id}").json()["status"] == "scheduled"
    page.get_by_role("button", name="退回草稿").click()
    expect(page.locator("#campaign")).to_have_attribute("data-status", "draft")
    expect(page.locator("[data-panel=audience] form")).to_be_visible()
    shoot(page, "back-to-draft")


def test_the_campaigns_pages_render_in_english(platform, crowd, page, shoot):
    _sign_in(page, platform, shoot)
    page.goto(platform.url + "/campaigns")
    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()
    shoot(page, "list-en")
    page.get_by_role("link", name="New campaign").click()
    expect(page.get_by_label("Control group (%)")).to_have_value("10")
    expect(page.get_by_label("Number of purchases from")).to_be_visible()
    shoot(page, "new-en")
    # Nothing left in Chinese in the page's content (the language switch names 中文 in its own language).
    assert re.findall(r"[\u4e00-\u9fff]+", page.locator("main").inner_text()) == []
