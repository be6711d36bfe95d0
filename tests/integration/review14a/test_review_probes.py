"""Review of issue 14 (webhooks, delivery receipts): probes of defects found, each failing before its fix."""

from __future__ import annotations

import json

import pytest

from services.campaigns.domain.delivery import check_pattern, reply_matches
from tests.integration.webhooks.harness import Host, touch
from tests.integration.webhooks.receiver import wait_for


@pytest.mark.parametrize(("match", "reply"), [("ＹＥＳ", "ＹＥＳ"), ("ＹＥＳ", "yes please"), ("是的|ＯＫ", "ok")])
def test_a_full_width_keyword_matches_the_reply_it_names(match, reply):
    # Replies are NFKC-folded before matching (ＹＥＳ reads YES); a keyword typed full-width with a Chinese
    # input method must be folded the same way, or it never matches even the identical reply.
    assert reply_matches(check_pattern(match), reply)


@pytest.mark.parametrize(("match", "reply", "moves"), [
    ("是？", "是?", True), ("是？", "不要", False),
    ("确认（样品）", "确认（样品）", True), ("确认（样品）", "确认样品", False)])
def test_full_width_punctuation_in_a_keyword_stays_text(match, reply, moves):
    # Folding a keyword must not turn a full-width ？ or （ into regex syntax: 是？ would match every reply.
    assert reply_matches(check_pattern(match), reply) is moves


@pytest.fixture
def hosts(tmp_path):
    made: list[Host] = []

    def make(**config) -> Host:
        h = Host(tmp_path / "alerts.db", **config)
        made.append(h)
        return h

    yield make
    for h in made:
        h.stop()


def test_a_host_that_does_not_resolve_is_tried_again_not_dead_at_once(hosts):
    # With the private-address guard on, the name is resolved before every request; a failed lookup (a DNS
    # outage) is as transient as the connection error the same host gives with the guard off: retried.
    wid = hosts().subscribe("http://no-such-host.invalid/hook", "campaign.touch")
    guarded = hosts(block_private=True, max_attempts=3, backoff_s=0.05).start()
    guarded.feed(touch(1))
    [d] = wait_for(lambda: guarded.deliveries(wid, status="dead"), what="dead after its tries")
    assert d["attempts"] == 3
    assert d["dead_reason"] == "gave up after 3 attempts; last: URL refused: the URL's host does not resolve"


def test_a_follow_up_touch_says_so_to_the_subscriber(hosts):
    # The cosmetics flow: the first touch is an SMS invite, the follow-up (a reply earned it) mails a sample.
    # A channel system fed by campaign.touch must tell them apart as the platform's own CampaignTouched does.
    h = hosts()
    wid = h.subscribe("http://127.0.0.1:9/hook", "campaign.touch")
    h.feed(touch(1), touch(2, step="follow_up", channel="mail"))
    bodies = {d["event_id"]: json.loads(h.hooks.store.delivery(d["delivery_id"]).body) for d in h.deliveries(wid)}
    steps = sorted((b["data"]["touch_id"], b["data"]["step"]) for b in bodies.values())
    assert steps == [("t-1", "initial"), ("t-2", "follow_up")]
