"""Webhook deliveries (issue 14 review): a host that does not resolve is retried like any transient failure,
and a campaign.touch delivery says which step of the campaign the touch is."""

from __future__ import annotations

import json

import pytest

from tests.integration.webhooks.harness import Host, touch
from tests.integration.webhooks.receiver import wait_for


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
