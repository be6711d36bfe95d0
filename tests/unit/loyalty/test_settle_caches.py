"""What a settle keeps between settles to cost less (issue 13) answers exactly as computing afresh would."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.loyalty.domain import rules as rules_module
from services.loyalty.domain.account import settle
from services.loyalty.domain.lots import Credit, replay
from services.loyalty.domain.model import Facts, Line, Purchase
from services.loyalty.store import sqlite_reads as sqlite_store
from shared.clock import iso_utc
from tests.unit.loyalty.helpers import SH, book

# Two rule versions with different expiry policies, so the version in force at each instant matters.
VERSIONS = [{"expiry": {"mode": "days", "days": 30}},
            {"effective_from": "2026-06-01T00:00:00+08:00", "expiry": {"mode": "month_end", "months": 2}},
            {"effective_from": "2027-01-01T00:00:00+08:00", "expiry": {"mode": "year_end", "months": 12}}]
moments = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC))


@settings(max_examples=200, deadline=None)
@given(st.lists(moments, min_size=1, max_size=40))
def test_kept_expiry_moments_equal_fresh_ones_whatever_the_zone_an_instant_is_written_in(instants):
    kept = book(VERSIONS)
    for at in instants + [i.astimezone(SH) for i in instants]:  # equal instants, asked again in another zone
        fresh = kept.at(at).expiry.expires_at(at, SH)
        assert kept.expires_at(at) == fresh
        assert kept.expires_at(at) == fresh  # the kept answer


def test_the_kept_expiry_moments_stay_bounded(monkeypatch):
    monkeypatch.setattr(rules_module, "_EXPIRY_KEPT", 10)
    kept = book(VERSIONS)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(35):
        at = start + timedelta(hours=n)
        assert kept.expires_at(at) == kept.at(at).expiry.expires_at(at, SH)
        assert len(kept._expiry) <= 10


def _row(p: Purchase) -> tuple:
    return (p.source, p.id, p.record_id, p.order_id, p.amount_minor, 0, iso_utc(p.time), p.day,
            json.dumps([list(vars(ln).values()) for ln in p.lines]))


def test_a_stored_purchase_decoded_again_is_equal_and_a_changed_row_is_decoded_afresh(monkeypatch):
    monkeypatch.setattr(sqlite_store, "_DECODED", {})
    monkeypatch.setattr(sqlite_store, "_DECODED_KEPT", 3)
    at = datetime(2026, 3, 1, 2, tzinfo=UTC)
    p = Purchase("pos/SH-001", "B1", "c_a", "B1", 12_345, at, "2026-03-01", (Line("SK-1", "skincare", 2, 6_000),))
    assert sqlite_store._purchase(_row(p)) == p
    assert sqlite_store._purchase(_row(p)) == p
    # The same purchase under another record (an erasure's anonymous id, say) is that row, not the kept one.
    moved = Purchase(p.source, p.id, "anon_1", p.order_id, p.amount_minor, p.time, p.day, p.lines)
    assert sqlite_store._purchase(_row(moved)) == moved
    for n in range(10):
        q = Purchase("pos/SH-001", f"B{n + 2}", "c_a", f"B{n + 2}", n, at, "2026-03-01", ())
        assert sqlite_store._purchase(_row(q)) == q
        assert len(sqlite_store._DECODED) <= 3


credits = st.lists(st.builds(Credit, st.sampled_from(["o:1", "o:2", "p:3"]), st.just("c_a"), moments,
                             st.integers(min_value=-5, max_value=500)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(credits, moments)
def test_lots_nothing_spends_from_hold_what_the_full_replay_gives_them(given_credits, now):
    # Issue 14: an imported member's opening lots (or a member who only bought) skip the event-by-event replay;
    # the full one runs when a horizon's state is asked for, and both must leave every lot the same.
    kept = book(VERSIONS)
    quick = replay(given_credits, [], [], now=now, expires=kept.expires_at)
    full = replay(given_credits, [], [], now=now, expires=kept.expires_at, snapshot_at=datetime(2030, 1, 1, tzinfo=UTC))
    assert quick.lots == full.lots
    assert (quick.debt, quick.held()) == (full.debt, full.held())


def test_a_member_with_no_fact_yet_holds_nothing_and_has_nothing_due():
    s = settle(Facts([], [], [], []), book(VERSIONS), customer_id="c_a", now=datetime(2026, 11, 20, tzinfo=UTC))
    assert (s.balance, s.tier, s.debt, s.targets, s.expiring, s.announce, s.next_due) == (0, None, 0, {}, [], [], None)
