"""Issue 2, "Unmerge restores both customers exactly": a provisional WeChat customer and a phone
customer, each with purchases, a refund, profile fields and consents, are merged by a binding event
and unmerged again through the handler. Both single customer views must then equal, field by field,
the views of the same two customers built from the same events without the binding event, and the
pair must not be merged again by a later event that names both."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from services.identity import messages
from services.identity.handlers import commands, queries
from tests.unit.identity.support import PSEUDO, customer_of_phone, event, incoming, make_deps, purchase

SHANGHAI = ZoneInfo("Asia/Shanghai")
PHONE = "+8613800138000"
OPENID = {"wechat_openid": "oW-1"}
C = customer_of_phone(PHONE)
W = "c_" + PSEUDO("wechat_openid", "oW-1")


def _day(n: int, hour: int = 10) -> str:
    return f"2026-04-{n:02d}T{hour:02d}:30:00+08:00"


# The WeChat follower: known only by WeChat and, later, a web account, until a page view binds the phone.
FOLLOWER = [
    event("w-follow", OPENID, kind="crm.follow", source="wechat/oa", time=_day(1)),
    purchase("w-buy-1", OPENID, "88.00", store_id="SH-002", source="wechat/mini", time=_day(2)),
    event("w-profile", OPENID, kind="crm.profile", source="wechat/mini", time=_day(5), name="Wei", city="Suzhou",
          gender="f"),
    event("w-consent", OPENID, kind="crm.consent", source="wechat/oa", time=_day(5), purpose="wechat", granted=True),
    event("w-web", {**OPENID, "web_user_id": "u-w"}, source="web/shop", time=_day(6)),
    purchase("w-buy-2", {"web_user_id": "u-w"}, "12.34", store_id="SH-002", source="web/shop", time=_day(6, 23)),
]
# The phone customer: tills and the web shop.
PHONE_CUSTOMER = [
    purchase("c-buy-1", {"phone": "138-0013-8000", "member_id": "M-C"}, "268.00", time=_day(1, 9)),
    purchase("c-buy-2", {"phone": "+86 138 0013 8000"}, "1000.50", store_id="SH-001", time=_day(3, 23)),
    purchase("c-buy-3", {"member_id": "M-C"}, "15.00", store_id="BJ-001", time=_day(4)),
    event("c-refund", {"phone": "13800138000"}, kind="crm.refund", time=_day(4, 12), order_id="o-c-buy-2",
          amount="500.25"),
    event("c-profile", {"phone": "13800138000"}, kind="crm.profile", source="web/shop", time=_day(2), name="Li Wei",
          birthday="1990-05-01", email="li@example.com"),
    event("c-consent", {"member_id": "M-C"}, kind="crm.consent", source="pos/SH-001", time=_day(3), purpose="sms",
          granted=False),
]
BIND = event("bind", {"phone": "008613800138000", **OPENID}, source="wechat/mini", time=_day(7))
# After the binding: the follower buys again through WeChat (the event belongs to the follower's record).
LATER = [purchase("w-buy-3", OPENID, "50.00", store_id="SH-002", source="wechat/mini", time=_day(8))]


def _world(path, store, with_binding: bool):
    deps = make_deps(path, store=store)
    messages.consume(incoming(FOLLOWER[:3]), deps=deps)
    messages.consume(incoming(PHONE_CUSTOMER[:4] + FOLLOWER[3:]), deps=deps)
    messages.consume(incoming(PHONE_CUSTOMER[4:]), deps=deps)
    if with_binding:
        outcome = messages.consume(incoming([BIND]), deps=deps)
        assert outcome.counts["merges"] == 1
    messages.consume(incoming(LATER), deps=deps)
    return deps


def _view(deps, customer_id: str) -> dict:
    view = queries.customer_view(deps.store, customer_id, reveal=True, zone=SHANGHAI).model_dump()
    del view["updated_at"]
    return view


def test_unmerge_restores_both_customers_exactly_and_they_stay_apart(store, tmp_path):
    apart = _world(tmp_path / "apart.db", None, with_binding=False)
    want_c, want_w = _view(apart, C), _view(apart, W)
    # The reference itself is what the two customers' own events say (checked by hand).
    assert want_c["stats"] == {"purchase_count": 3, "purchase_days": 3, "total_spend": "1283.50",
                               "refund_total": "500.25", "first_purchase_at": "2026-04-01T09:30:00+08:00",
                               "last_purchase_at": "2026-04-04T10:30:00+08:00", "home_store": "SH-001"}
    assert want_w["stats"] == {"purchase_count": 3, "purchase_days": 3, "total_spend": "150.34",
                               "refund_total": "0.00", "first_purchase_at": "2026-04-02T10:30:00+08:00",
                               "last_purchase_at": "2026-04-08T10:30:00+08:00", "home_store": "SH-002"}
    assert (want_c["attributes"]["name"], want_w["attributes"]["name"]) == ("Li Wei", "Wei")
    assert (want_c["phone"], want_w["phone"], want_c["merged_from"]) == (PHONE, None, [])
    assert sorted(i["type"] for i in want_w["identifiers"]) == ["web_user_id", "wechat_openid"]

    merged = _world(tmp_path / "merged.db", store, with_binding=True)
    together = _view(merged, W)  # a merged-away id answers with the customer it is part of
    assert together["customer_id"] == C and together["merged_from"] == [W]
    assert together["stats"]["purchase_count"] == 6 and together["stats"]["total_spend"] == "1433.84"
    assert together["attributes"]["name"] == "Wei"  # the follower's newer profile wins while they are one
    assert len(together["identifiers"]) == 4

    (merge,) = merged.store.merges([C])
    done = commands.unmerge(C, merge.merge_id, by="ops-key", deps=merged)
    assert (done["survivor_id"], done["restored_id"], done["records"]) == (C, W, [W])
    assert _view(merged, C) == want_c
    assert _view(merged, W) == want_w

    # A later event naming both the phone and the follower's WeChat id does not join them again.
    again = messages.consume(incoming([event("bind-again", {"phone": "13800138000", **OPENID},
                                             source="wechat/mini", time=_day(9))]), deps=merged)
    assert (again.processed, again.counts["merges"], again.counts["conflicts"]) == (1, 0, 1)
    assert merged.store.customer_count() == 2
    assert (_view(merged, C), _view(merged, W)) == (want_c, want_w)
