"""Delivery receipts' rules (issue 14): a touch's state whatever order its receipts arrive in, the figures
and rates of a group, which replies move a member on, and the ``crm.delivery`` event's contract."""

from __future__ import annotations

import itertools

import pytest

from services.campaigns.domain.delivery import Receipt, TouchState, figures, keywords, reply_matches, states
from shared.contract.events import DeliveryEvent, InvalidEvent, parse_event


def r(eid: str, status: str, ms: int, touch: str = "t_1", reason: str | None = None) -> Receipt:
    return Receipt("web/sms", eid, touch, "cmp_1", status, reason, ms)


def test_the_highest_status_wins_in_every_arrival_order():
    receipts = [r("a", "delivered", 1), r("b", "replied", 3), r("c", "delivered", 4), r("d", "opened", 2),
                r("e", "failed", 5, reason="late")]
    for order in itertools.permutations(receipts):
        assert states(order) == {"t_1": TouchState("replied")}


def test_a_failed_touch_carries_the_reason_of_its_newest_failure_and_a_delivery_outranks_a_failure():
    failed = [r("a", "failed", 1, reason="busy"), r("b", "failed", 9, reason="blocked"), r("c", "failed", 5)]
    for order in itertools.permutations(failed):
        assert states(order) == {"t_1": TouchState("failed", "blocked")}
    assert states([r("x", "failed", 1, "t_2")]) == {"t_2": TouchState("failed", "unknown")}
    assert states([*failed, r("d", "delivered", 0)]) == {"t_1": TouchState("delivered")}


def test_group_figures_count_each_touch_once_with_the_statuses_it_implies():
    got = figures([(TouchState("replied"), True), (TouchState("opened"), False), (TouchState("delivered"), False),
                   (TouchState("failed", "空号"), False), (TouchState("failed", "空号"), False),
                   (TouchState("failed", "blocked"), False), (TouchState(), False), (TouchState(), False)])
    assert (got.touches, got.delivered, got.failed, got.opened, got.replied, got.pending, got.follow_ups) == (
        8, 3, 3, 2, 1, 2, 1)
    assert got.failure_reasons == {"blocked": 1, "空号": 2}
    assert (got.rate(got.delivered), got.rate(got.failed), got.rate(got.opened), got.rate(got.replied)) == (
        3 / 8, 3 / 8, 2 / 8, 1 / 8)
    assert figures([]).rate(0) is None
    unheard = figures([(TouchState(), False), (TouchState(), False)])  # no receipt yet: nothing measured
    assert (unheard.pending, unheard.rate(unheard.delivered)) == (2, None)


@pytest.mark.parametrize(("pattern", "reply", "moves"), [
    (None, "anything at all", True),
    (None, None, True),
    ("确认", "好的，确认！", True),
    ("yes", " ＹＥＳ ", True),  # full-width, padded: folded before matching
    (["确认", "yes"], "OK, Yes please", True),
    ("^(yes|y)$", "yes", False),  # regex syntax is literal text
    ("^(yes|y)$", "^(YES|y)$", True),
    ("confirm", None, False),
])
def test_which_replies_move_a_member_to_the_follow_up(pattern, reply, moves):
    assert reply_matches(keywords(pattern), reply) is moves


@pytest.mark.parametrize("pattern", ["(a+)+$", "\\d+\\s*\\d+x", "\\d+\\d+\\d+x"])
def test_a_pattern_that_would_backtrack_is_literal_text_searched_in_linear_time(pattern):
    assert not reply_matches(keywords(pattern), "1" * 2000 + "a" * 2000)
    assert reply_matches(keywords(pattern), f"text {pattern} text")


def _receipt(**data) -> dict:
    return {"specversion": "1.0", "id": "dl-1", "source": "web/sms-gateway", "type": "crm.delivery",
            "time": "2026-03-11T12:00:00+08:00", "data": {"identity": {"phone": "13800138000"}, **data}}


def test_the_delivery_event_contract():
    event = parse_event(_receipt(touch_id="t_1", status="failed", reason="空号"))
    assert isinstance(event, DeliveryEvent)
    assert (event.data.touch_id, event.data.status, event.data.reason, event.data.reply_text) == (
        "t_1", "failed", "空号", None)
    with pytest.raises(InvalidEvent) as bad:
        parse_event(_receipt(touch_id="t_1", status="bounced"))
    assert bad.value.reasons == ["data.status: Input should be 'delivered', 'failed', 'opened' or 'replied'"]
    with pytest.raises(InvalidEvent) as bad:
        parse_event(_receipt(status="replied", reply_text="x" * 2001))
    assert [x.split(":")[0] for x in bad.value.reasons] == ["data.touch_id", "data.reply_text"]


def test_a_failure_reason_is_kept_with_any_phone_inside_masked_and_cut_short():
    from services.campaigns.handlers.receipts import reason_of

    event = parse_event(_receipt(touch_id="t_1", status="failed", reason="号码 13800138000 无法送达 " + "x" * 100))
    kept = reason_of(event)
    assert "13800138000" not in kept and kept.startswith("号码 ") and len(kept) == 64
    assert reason_of(parse_event(_receipt(touch_id="t_1", status="failed", reason="  "))) is None
