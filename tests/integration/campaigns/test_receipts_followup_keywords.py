"""A follow-up step's ``match`` is keywords, literal text (issue 14 review): a reply is searched for them in
linear time, whatever a campaign's definition sends, so no reply can stall the campaigns consumer; full-width
keywords and punctuation are folded as replies are, and stay text."""

from __future__ import annotations

import time

import pytest

from services.campaigns.domain.delivery import keywords, reply_matches
from tests.integration.campaigns.test_receipts import BODY, delivery, launched, touches
from tests.unit.campaigns.factory import at


def _follow_ups(world) -> list[str]:
    return [m["customer_id"] for m in world.messages("crm.campaigns.touches") if m.get("step") == "follow_up"]


@pytest.mark.parametrize("pattern", ["\\d+\\s*\\d+x", "\\d+\\d+\\d+x"])
def test_a_regex_in_match_is_literal_text_and_a_long_crafted_reply_is_consumed_at_once(store, tmp_path, pattern):
    world = launched(store, tmp_path, {**BODY, "follow_up": {**BODY["follow_up"], "match": pattern}})
    sent = touches(world)
    a, b = sorted(sent)[:2]
    world.now = at(10, 7)
    # The pattern's own text moves its member on (it is a keyword, not a regex) ...
    world.feed([delivery(a, "k-1", at(10, 3), sent[a]["touch_id"], "replied", reply_text=f"ok {pattern}")])
    assert _follow_ups(world) == [a]
    # ... and 2,000 digits, which such a regex backtracks on for seconds to hours, are read at once.
    started = time.monotonic()
    out = world.feed([delivery(b, "k-2", at(10, 3), sent[b]["touch_id"], "replied", reply_text="1" * 2000)])
    assert time.monotonic() - started < 2.0
    assert out.processed == 1 and out.counts["follow_up:no_match"] == 1
    assert _follow_ups(world) == [a]


@pytest.mark.parametrize(("match", "reply"), [("ＹＥＳ", "ＹＥＳ"), ("ＹＥＳ", "yes please"), (["是的", "ＯＫ"], "ok")])
def test_a_full_width_keyword_matches_the_reply_it_names(match, reply):
    # Replies are NFKC-folded before matching (ＹＥＳ reads YES); a keyword typed full-width with a Chinese
    # input method must be folded the same way, or it never matches even the identical reply.
    assert reply_matches(keywords(match), reply)


@pytest.mark.parametrize(("match", "reply", "moves"), [
    ("是？", "是?", True), ("是？", "不要", False),
    ("确认（样品）", "确认（样品）", True), ("确认（样品）", "确认样品", False)])
def test_full_width_punctuation_in_a_keyword_stays_text(match, reply, moves):
    # Folding a keyword must not turn a full-width ？ or （ into regex syntax: 是？ would match every reply.
    assert reply_matches(keywords(match), reply) is moves
