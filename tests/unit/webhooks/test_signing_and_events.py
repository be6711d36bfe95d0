"""The signer, the event table (what an alert change, an expiry notice, a tier change, a touch become), the
URL guard and the backoff schedule."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from shared.contract.messages import (
    AlertChanged,
    CampaignTouched,
    PointsExpired,
    PointsExpiryAnnounced,
    TierChanged,
    decode,
    encode,
)
from shared.webhooks import signing
from shared.webhooks.config import WebhooksConfig
from shared.webhooks.dispatch import next_wait_s
from shared.webhooks.events import KIND_MARKERS, events_of
from shared.webhooks.urls import UnsafeUrl, check_url

AT = datetime(2026, 11, 20, 2, 15, tzinfo=UTC)


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = b'{"id":"evt_1"}'
    header = signing.sign("whsec_abc", body, t=1_790_000_000)
    expected = hmac.new(b"whsec_abc", b"1790000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1790000000,v1={expected}"
    assert signing.verify("whsec_abc", body, header, now=1_790_000_100)
    assert not signing.verify("whsec_abc", body, header, now=1_790_000_301)  # older than the tolerance
    assert not signing.verify("whsec_abd", body, header, now=1_790_000_000)
    assert not signing.verify("whsec_abc", body + b"x", header, now=1_790_000_000)
    assert not signing.verify("whsec_abc", body, "v1=" + expected, now=1_790_000_000)
    assert signing.new_secret() != signing.new_secret()


def _alert(status: str, severity: str, minutes: int = 0) -> AlertChanged:
    return AlertChanged(alert_id="al_1", customer_id="c_1", type="churn", severity=severity, status=status,
                        store_id="SH-001", at=AT + timedelta(minutes=minutes))


def test_alert_opened_escalated_and_reopened():
    seen: dict = {}
    steps = [_alert("open", "yellow", 0), _alert("open", "yellow", 1), _alert("open", "red", 2),
             _alert("acknowledged", "red", 3), _alert("resolved", "red", 4), _alert("open", "info", 5),
             _alert("acknowledged", "yellow", 6)]
    out = [[(e.type, e.data.get("previous_severity"), e.data["severity"]) for e in events_of(m, seen=seen)]
           for m in steps]
    assert out == [[("alert.opened", None, "yellow")], [], [("alert.escalated", "yellow", "red")], [], [],
                   [("alert.opened", None, "info")], [("alert.escalated", "info", "yellow")]]
    assert list(seen) == ["al_1"]


def test_the_same_message_is_the_same_event():
    first = events_of(_alert("open", "yellow"), seen={})
    again = events_of(_alert("open", "yellow"), seen={})
    assert first[0].event_id == again[0].event_id and first[0].event_id.startswith("evt_")


def test_loyalty_and_campaign_events():
    expiry = PointsExpiryAnnounced(announcement_id="an_1", customer_id="c_1", points=120,
                                   expires_at=AT + timedelta(days=30), balance=4_500_000, at=AT)
    tier = TierChanged(change_id="tc_1", customer_id="c_1", previous="A", tier="B", direction="upgrade",
                       reason="spend 13800138000 reached", benefits={"discount": "5%"}, at=AT)
    touch = CampaignTouched(touch_id="t_1", campaign_id="cmp", customer_id="c_1", channel="sms",
                            offer={"phone": "13800138000", "code": "SPRING"}, at=AT)
    [e1], [e2], [e3] = (events_of(m, seen={}) for m in (expiry, tier, touch))
    assert (e1.type, e1.data["points"], e1.data["balance"], e1.data["expires_at"]) == (
        "points.expiring", 120, 4_500_000, "2026-12-20T02:15:00+00:00")
    assert (e2.type, e2.data["previous"], e2.data["tier"], e2.data["direction"]) == ("tier.changed", "A", "B",
                                                                                    "upgrade")
    assert "13800138000" not in e2.body() and "13800138000" not in e3.body()
    assert e3.type == "campaign.touch" and e3.data["offer"]["code"] == "SPRING"
    assert events_of(PointsExpired(entry_id="e", customer_id="c", points=1, at=AT), seen={}) == []


def test_only_the_kinds_in_the_table_are_decoded():
    wanted = encode(_alert("open", "red"))
    assert any(m in wanted for m in KIND_MARKERS) and isinstance(decode(wanted), AlertChanged)
    other = encode(PointsExpired(entry_id="e", customer_id="c", points=1, at=AT))
    assert not any(m in other for m in KIND_MARKERS)


@pytest.mark.parametrize("url", ["ftp://h/x", "javascript:alert(1)", "https://u:p@h/x", "https:///x", "http://h:99999/"])
def test_unsafe_urls(url):
    with pytest.raises(UnsafeUrl):
        check_url(url, block_private=False)


def test_private_hosts_blocked_after_resolution():
    def resolve(host, port, proto=0):
        return [(2, 1, 6, "", ("192.168.1.10", port))]

    assert check_url("https://hooks.example.com/x", block_private=False, resolve=resolve)
    with pytest.raises(UnsafeUrl):
        check_url("https://hooks.example.com/x", block_private=True, resolve=resolve)


def test_backoff_doubles_up_to_the_cap():
    cfg = WebhooksConfig(_env_file=None, backoff_s=30, backoff_max_s=600)
    assert [next_wait_s(n, cfg) for n in range(1, 8)] == [30, 60, 120, 240, 480, 600, 600]
