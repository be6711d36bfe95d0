"""Issue 16, the reports pages in a real browser against the platform as ``crm up`` starts it: a store manager
opens their store's KPIs for a month with generated purchases and reads exactly the API's figures; another store's
report is the not-allowed page; every report page renders (and is photographed) in Chinese and English."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from services.console.pages.reports import FIGURES
from tests.e2e.console.conftest import PASSWORD, sign_in, wait_until
from tests.e2e.console.test_console_platform import _untranslated
from tests.integration.flows.support import event, new_phone, purchase

pytestmark = [pytest.mark.broker, pytest.mark.slow]
SHANGHAI = ZoneInfo("Asia/Shanghai")
STORE, OTHER = "RP1", "RP2"  # stores no other console test sells at, so their months hold only these purchases


@pytest.fixture(scope="module")
def month_of_sales(platform):
    """Last month at RP1: two customers, three orders (one customer twice, on two days); one order at RP2. The
    manager of RP1 is an operator scoped to it. Returns the month and the API's KPIs read with their token."""
    first = datetime.now(SHANGHAI).replace(day=1, hour=12, minute=0, second=0, microsecond=0)
    last_month = (first - timedelta(days=1)).replace(day=1)
    month = f"{last_month:%Y-%m}"
    a, b, c = new_phone(), new_phone(), new_phone()
    events = [purchase({"phone": a}, last_month + timedelta(days=2), "688.00", store=STORE),
              purchase({"phone": a}, last_month + timedelta(days=9), "120.50", store=STORE),
              purchase({"phone": b}, last_month + timedelta(days=4), "1299.00", store=STORE),
              purchase({"phone": c}, last_month + timedelta(days=5), "99.00", store=OTHER),
              # Two surveys at RP1: a promoter and a detractor (NPS 0, CSAT 50%).
              event("crm.survey", last_month + timedelta(days=3), {"phone": a}, source="web/survey", score=10,
                    store_id=STORE),
              event("crm.survey", last_month + timedelta(days=5), {"phone": b}, source="web/survey", score=5,
                    store_id=STORE)]
    with platform.api("identity") as identity:
        r = identity.post("/v1/events", json=events)
        assert r.status_code == 202, r.text
    platform.add_staff("mgr-rp1", role="operator", store=STORE)
    with platform.api("alerts", platform.token("mgr-rp1")) as alerts:
        report = wait_until(lambda: (lambda got: got if got.get("orders") == 3 and got.get("customers") == 2 else None)(
            alerts.get(f"/v1/reports/stores/{STORE}", params={"month": month}).json()), what="RP1's month counted")
        sheet = wait_until(lambda: (lambda got: got if got.get("customers") == 2 else None)(
            alerts.get("/v1/reports/attendance", params={"store_id": STORE, "month": month}).json()),
            what="RP1's attendance sheet")
        scores = wait_until(lambda: (lambda got: got if got.get("responses") == 2 else None)(
            alerts.get("/v1/reports/satisfaction", params={"store_id": STORE, "month": month}).json()),
            what="RP1's surveys counted")
    return {"month": month, "report": report, "sheet": sheet, "scores": scores}


def _sign_in(page, platform, user: str, password: str, shoot) -> None:
    sign_in(page, platform, user, password, shoot, start="/sign-in")


def test_a_store_manager_reads_exactly_the_apis_kpis_of_their_store_and_another_store_is_not_allowed(
        platform, month_of_sales, page, shoot):
    report, month = month_of_sales["report"], month_of_sales["month"]
    assert (report["sales"], report["orders"], report["customers"]) == ("2107.50", 3, 2)
    _sign_in(page, platform, "mgr-rp1", PASSWORD, shoot)
    page.get_by_role("link", name="报表").click()
    expect(page.locator("[data-page=reports]")).to_be_visible()
    shoot(page, "reports")
    page.get_by_role("link", name="门店经营指标").click()
    expect(page.locator("[data-page=report-kpis]")).to_be_visible()
    page.get_by_label("门店", exact=True).fill(STORE)
    page.get_by_label("月份").fill(month)
    page.get_by_role("button", name="查看").click()
    # Swapped in place; the address follows the form (a link to this report).
    expect(page.get_by_test_id("kpi-title")).to_have_text(f"门店 {STORE} · {month}")
    expect(page).to_have_url(re.compile(rf"/reports/kpis\?scope=store&store_id={STORE}&.*month={month}"))
    for name, _label, _kind in FIGURES:
        shown = report[name]
        expect(page.locator(f"tr[data-figure={name}] td").first).to_have_attribute(
            "data-value", "None" if shown is None else str(shown))
    expect(page.locator("tr[data-figure=sales] td").first).to_have_text("¥2,107.50")
    expect(page.locator("tr[data-figure=orders] td").first).to_have_text("3")
    expect(page.locator("tr[data-figure=customers] td").first).to_have_text("2")
    expect(page.locator("tr[data-figure=average_ticket] td").first).to_have_text(f"¥{report['average_ticket']}")
    expect(page.locator("tr[data-figure=repeat_purchase_rate] td").first).to_have_text(
        f"{report['repeat_purchase_rate'] * 100:.2f}%")
    expect(page.locator("[data-chart=kpi][data-drawn=true]")).to_have_count(2)
    expect(page.locator("[data-chart=kpi] canvas")).to_have_count(2)
    shoot(page, "kpis")
    # Another store's report: the API's 403 is the not-allowed page.
    response = page.goto(f"{platform.url}/reports/kpis?scope=store&store_id={OTHER}&month={month}")
    assert response.status == 403
    expect(page.locator("[data-page=forbidden]")).to_be_visible()
    shoot(page, "kpis-other-store")
    response = page.goto(f"{platform.url}/reports/attendance?store_id={OTHER}&month={month}")
    assert response.status == 403
    expect(page.locator("[data-page=forbidden]")).to_be_visible()
    shoot(page, "attendance-other-store")


def test_the_attendance_sheet_lists_the_apis_lines_and_downloads_its_csv(platform, month_of_sales, page, shoot):
    sheet, month = month_of_sales["sheet"], month_of_sales["month"]
    _sign_in(page, platform, "mgr-rp1", PASSWORD, shoot)
    page.goto(f"{platform.url}/reports/attendance?store_id={STORE}&month={month}")
    expect(page.locator("[data-page=report-attendance]")).to_be_visible()
    rows = page.get_by_test_id("attendance-table").locator("tbody tr")
    expect(rows).to_have_count(2)
    for row, line in zip(rows.all(), sheet["items"], strict=True):
        expect(row.locator("td")).to_have_text([line["customer_id"], str(line["visits"]), str(line["orders"]),
                                                f"¥{float(line['spend']):,.2f}", "–", "–", line["tier"] or "–"])
    shoot(page, "attendance")
    with page.expect_download() as download:
        page.get_by_test_id("attendance-csv").click()
    text = open(download.value.path(), encoding="utf-8").read()
    assert text.splitlines()[0] == "customer_id,visits,orders,spend,covers,spend_per_head,tier"
    assert [line.split(",")[0] for line in text.splitlines()[1:]] == [i["customer_id"] for i in sheet["items"]]


@pytest.mark.parametrize("path", ["/reports", "/reports/kpis?scope=store&store_id={store}&month={month}",
                                  "/reports/attendance?store_id={store}&month={month}",
                                  "/reports/value?store_id={store}",
                                  "/reports/satisfaction?store_id={store}&month={month}",
                                  "/reports/churn-reasons?month={month}"])
def test_every_report_page_renders_in_chinese_then_english_with_no_missing_message(
        platform, month_of_sales, page, shoot, path):
    _sign_in(page, platform, "mgr-rp1", PASSWORD, shoot)
    url = platform.url + path.format(store=STORE, month=month_of_sales["month"])
    response = page.goto(url)
    assert response.status == 200
    expect(page.locator("main [data-page]")).to_be_visible()
    expect(page.locator("[data-chart]:not([data-drawn=true])")).to_have_count(0)
    shoot(page, "zh")
    assert _untranslated(page.locator("body").inner_text(), "zh_Hans_CN") == []
    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("main [data-page]")).to_be_visible()
    expect(page.locator("[data-chart]:not([data-drawn=true])")).to_have_count(0)
    shoot(page, "en")
    if "value" in path:
        expect(page.get_by_test_id("pyramid")).to_contain_text("Top (1%)")
    if "satisfaction" in path:
        scores = month_of_sales["scores"]
        assert (scores["nps"], scores["csat"]) == (0.0, 0.5)
        expect(page.get_by_test_id("satisfaction").locator("dd").nth(1)).to_have_text("0.00")
        expect(page.get_by_test_id("satisfaction").locator("dd").nth(2)).to_have_text("50.00%")
        expect(page.locator("[data-chart=trend] canvas")).to_have_count(1)
