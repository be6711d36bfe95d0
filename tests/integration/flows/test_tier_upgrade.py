"""Flow 2: visits and spend enough for tier B make loyalty upgrade the member; alerts raises the
tier-upgrade moment for the member's home store with the new tier's benefits; the view shows the tier."""

from __future__ import annotations

from tests.integration.flows.support import Flow, at, new_phone, purchase

# Tier B of the restaurant table (DOMAIN.md): gift 80 CNY, best discount 88%, calls every 5 days and
# visits every 15 days, the brand WeChat group.
B_BENEFITS = {"birthday_gift_cny": 80, "best_discount": "0.88", "discount_excludes": ["drinks", "seafood", "set menus"],
              "manager_call_every_days": 5, "manager_visit_every_days": 15, "wechat_group": "brand"}


def test_enough_visits_and_spend_for_tier_b_upgrade_the_member_and_raise_the_moment_at_the_home_store(flow: Flow):
    flow.set_clocks(at("2026-11-20T12:00"))
    phone = new_phone()
    who = {"phone": phone}
    # Tier B over the 3-month window needs 4 visits and 3,000 CNY a month on average: 12 visit days and
    # 9,000 CNY. Six days of 800.00 (4,800) first: C needs 6 days and 4,500.
    flow.ingest(*(purchase(who, at(f"2026-11-{d:02d}T19:00"), "800.00", store="SH-007") for d in range(2, 8)))
    customer = flow.customer_id(phone=phone)
    assert flow.view(customer)["loyalty"]["tier"] == "C"
    # Six more days (SH-007 stays the home store: 9 of the 12 days there): 12 days and 9,600.00 make B.
    flow.ingest(*(purchase(who, at(f"2026-11-{d:02d}T19:00"), "800.00", store="SH-007" if d < 11 else "SH-002")
                  for d in range(8, 14)))

    view = flow.view(customer)
    assert view["loyalty"]["tier"] == "B"
    assert view["loyalty"]["points_balance"] == 12 * 800
    assert view["stats"]["home_store"] == "SH-007"
    account = flow.account(customer)
    assert (account["tier"], account["tier_benefits"]) == ("B", B_BENEFITS)

    upgrade = flow.open_alerts(customer)["tier_upgrade"]
    assert upgrade["store_id"] == "SH-007"
    assert upgrade["severity"] == "info"
    assert upgrade["repeats"] == 1  # the upgrade to C, then to B: one moment, repeated
    assert upgrade["detail"]["value"] == "B"
    assert upgrade["detail"]["benefits"] == B_BENEFITS
    shown = {a["type"]: a for a in view["alerts"]["open"]}
    assert shown["tier_upgrade"]["alert_id"] == upgrade["alert_id"]
    assert shown["tier_upgrade"]["store_id"] == "SH-007"

    flow.assert_replays_change_nothing([customer])
