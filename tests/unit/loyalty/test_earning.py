"""Earning rules and refunds, with values computed by hand."""

from __future__ import annotations

import itertools
import random

from services.loyalty.domain.account import settle
from services.loyalty.domain.earning import net_after_refunds
from services.loyalty.domain.model import Line
from tests.unit.loyalty.helpers import bonus, book, facts, purchase, refund, t


def _by_rule(settlement, bucket):
    return {rule: tg.points for (b, rule), tg in settlement.targets.items() if b == bucket}


def test_base_rate_rounds_down_once_per_order():
    s = settle(facts([purchase("o1", "268.99", "2026-03-01 10:00")]), book(), customer_id="c_a",
               now=t("2026-03-02 00:00"))
    assert _by_rule(s, "p:pos/SH-001:o1") == {"base": 268}
    assert s.balance == 268


def test_rate_from_settings_is_exact_decimal():
    # 3 points per 2.00: 99.99 -> floor(149.985) = 149.
    s = settle(facts([purchase("o1", "99.99", "2026-03-01 10:00")]), book(points_per_unit="3", unit_amount="2.00"),
               customer_id="c_a", now=t("2026-03-02 00:00"))
    assert s.balance == 149


def test_category_and_sku_multipliers_apply_to_their_share_of_the_order():
    lines = (Line("SK-1", "skincare", 1, 10000), Line("SK-2", "makeup", 2, 5000), Line("SK-3", "skincare", 1, 5000))
    rules = book({"earning": {"categories": {"skincare": "2", "makeup": "1.5"}, "skus": {"SK-3": "3"}}})
    # 180.00 paid (a discount on the 250.00 of lines): shares 100/250, 100/250, 50/250.
    s = settle(facts([purchase("o1", "180.00", "2026-03-01 10:00", lines=lines)]), rules, customer_id="c_a",
               now=t("2026-03-02"))
    # SK-1: x = 72 -> 72 extra; makeup: x = 72 -> floor(108) - 72 = 36; SK-3 (sku beats category): x = 36 -> 72.
    assert _by_rule(s, "p:pos/SH-001:o1") == {"base": 180, "category:skincare": 72, "category:makeup": 36,
                                              "sku:SK-3": 72}
    assert s.balance == 360


def test_campaign_bonus_counts_inside_its_window_only_and_once_per_campaign():
    ps = [purchase("in", "100.00", "2026-05-10 12:00"), purchase("edge", "100.00", "2026-05-20 00:00"),
          purchase("before", "100.00", "2026-05-09 23:59")]
    bs = [bonus("g1", "camp1", "2", "2026-05-10 00:00", "2026-05-20 00:00"),
          bonus("g2", "camp1", "3", "2026-05-10 00:00", "2026-05-20 00:00", record="c_b"),  # same campaign, merged in
          bonus("g3", "camp2", "1.5", "2026-05-01 00:00", "2026-06-01 00:00", active=False)]  # withdrawn
    s = settle(facts(ps, bonuses=bs), book(), customer_id="c_a", now=t("2026-06-01"))
    assert _by_rule(s, "p:pos/SH-001:in") == {"base": 100, "campaign:camp1": 200}
    assert _by_rule(s, "p:pos/SH-001:edge") == {"base": 100}
    assert _by_rule(s, "p:pos/SH-001:before") == {"base": 100}


def test_caps_apply_in_event_time_order_per_calendar_period():
    rules = book({"earning": {"caps": {"day": 300, "month": 500}}})
    ps = [purchase("a", "200.00", "2026-07-01 09:00"), purchase("b", "200.00", "2026-07-01 10:00"),
          purchase("c", "200.00", "2026-07-02 09:00"), purchase("d", "200.00", "2026-07-31 09:00"),
          purchase("e", "200.00", "2026-08-01 09:00")]
    s = settle(facts(list(reversed(ps))), rules, customer_id="c_a", now=t("2026-08-02"))
    # a 200; b day room 100; c month room 200; d month room 0; e new month 200.
    assert [sum(_by_rule(s, f"p:pos/SH-001:{x}").values()) for x in "abcde"] == [200, 100, 200, 0, 200]
    assert _by_rule(s, "p:pos/SH-001:b")["cap"] == -100


def test_refund_formula_is_exact_and_capped():
    assert net_after_refunds(268, 26800, 16800) == 100  # floor(268 * 100 / 268)
    assert net_after_refunds(100, 30000, 10000) == 66  # floor(66.66...)
    assert net_after_refunds(268, 26800, 26800) == 0
    assert net_after_refunds(268, 26800, 99999) == 0  # R capped at A
    assert net_after_refunds(0, 0, 500) == 0


def test_partial_refunds_in_any_order_and_split_reach_the_same_result():
    rules = book({"earning": {"categories": {"skincare": "2"}}})
    lines = (Line("SK-1", "skincare", 1, 33333),)
    p = purchase("o1", "333.33", "2026-04-01 10:00", lines=lines)  # E = floor(666.66) = 666
    splits = [["100.00", "0.01", "23.32"], ["123.33"], ["50.00", "50.00", "23.33"]]
    results = set()
    for split in splits:
        refunds = [refund(f"r{i}", "o1", amt, f"2026-04-0{2 + i} 10:00") for i, amt in enumerate(split)]
        for order in itertools.permutations(refunds):
            s = settle(facts([p], list(order)), rules, customer_id="c_a", now=t("2026-05-01"))
            results.add(s.balance)
    # floor(666 * (333.33 - 123.33) / 333.33) = floor(666 * 21000 / 33333) = 419
    assert results == {666 * 21000 // 33333} == {419}


def test_full_refund_leaves_zero_and_refund_before_purchase_counts():
    p = purchase("o1", "268.00", "2026-04-01 10:00")
    early = refund("r1", "o1", "100.00", "2026-03-31 10:00")  # arrives (and is dated) before the purchase
    rest = refund("r2", "o1", "168.00", "2026-04-03 10:00")
    s = settle(facts([p], [early, rest]), book(), customer_id="c_a", now=t("2026-05-01"))
    assert s.balance == 0
    assert _by_rule(s, "p:pos/SH-001:o1") == {"base": 268, "refund": -268}


def test_refund_reaches_only_the_order_it_names_and_never_exceeds_what_it_earned():
    rng = random.Random(5)
    ps = [purchase(f"o{i}", f"{rng.randrange(100, 99999) / 100:.2f}", f"2026-02-{1 + i:02d} 10:00") for i in range(20)]
    rs = [refund(f"r{i}", f"o{i % 20}", f"{rng.randrange(1, 50000) / 100:.2f}", "2026-03-01 10:00") for i in range(40)]
    s = settle(facts(ps, rs), book(), customer_id="c_a", now=t("2026-03-02"))
    for p in ps:
        got = sum(_by_rule(s, p.bucket).values())
        refunded = sum(r.amount_minor for r in rs if r.order_id == p.order_id)
        earned = p.amount_minor // 100
        assert 0 <= got <= earned
        assert got == earned * (p.amount_minor - min(refunded, p.amount_minor)) // p.amount_minor


def test_a_refund_reopens_the_cap_room_it_had_used_for_later_purchases_of_the_period():
    # A member at the monthly cap returns the order that filled it: the cap counts what the member keeps,
    # so the later purchase (kept, and capped at the time) earns what it would have earned without it.
    rules = book({"earning": {"caps": {"month": 500}}})
    a, b = purchase("a", "500.00", "2026-07-01 10:00"), purchase("b", "300.00", "2026-07-02 10:00")
    full = settle(facts([a, b], [refund("ra", "a", "500.00", "2026-07-10 10:00")]), rules, customer_id="c_a",
                  now=t("2026-08-01"))
    # a: 500, all refunded -> 0; b: room 500 - 0 -> its 300 (before: 0, and the member kept nothing).
    assert (sum(_by_rule(full, a.bucket).values()), sum(_by_rule(full, b.bucket).values())) == (0, 300)
    part = settle(facts([a, b], [refund("ra", "a", "100.00", "2026-07-10 10:00")]), rules, customer_id="c_a",
                  now=t("2026-08-01"))
    # a keeps floor(500 x 400 / 500) = 400; b gets the 100 left under the cap.
    assert (sum(_by_rule(part, a.bucket).values()), sum(_by_rule(part, b.bucket).values())) == (400, 100)
    assert _by_rule(part, b.bucket) == {"base": 300, "cap": -200}
    # A refund of the capped order itself leaves floor(E x (A - R) / A) of what it earned.
    own = settle(facts([a, b], [refund("rb", "b", "150.00", "2026-07-10 10:00")]), rules, customer_id="c_a",
                 now=t("2026-08-01"))
    assert (sum(_by_rule(own, a.bucket).values()), sum(_by_rule(own, b.bucket).values())) == (500, 0)
