"""Issue 13 (400 MB a process) for the launch: the audience is read and evaluated a bounded chunk of customers at a
time (a whole read of 100,000 customers' facts peaked at 525-613 MB), and the launch stays exactly what ``plan()``
over every customer's facts at once decides: members, groups, buckets, exclusions, touches, outbox messages."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from services.campaigns.domain import scoring
from services.campaigns.domain.audience import launch_fields, plan
from services.campaigns.domain.definition import Definition
from services.campaigns.handlers import commands
from services.campaigns.handlers import launch as launching
from shared.contract import topics
from shared.contract.facts import epoch_ms
from shared.http.errors import Conflict
from tests.integration.campaigns.test_preview_index import T0, History, deps_for, random_filter


def whole_plan(campaign_id: str, deps):
    """The launch's decision over every customer's facts read at once (the way before chunks)."""
    now = deps.clock()
    definition = commands.definition_of(commands.get(campaign_id, deps=deps))
    on = now.astimezone(ZoneInfo(deps.settings.timezone)).date()
    facts = deps.store.customer_facts(as_of_ms=epoch_ms(now), fields=launch_fields(definition),
                                      categories=definition.audience.categories is not None)
    scores = scoring.p_alive(facts, on) if definition.audience.p_alive is not None else None
    return plan(campaign_id, definition, facts, on=on, cap=deps.config.contact_cap, p_alive=scores,
                recent_touches=launching.recent_touches(deps=deps, as_of_ms=epoch_ms(now)))


def counted_reads(store, monkeypatch) -> list[int | None]:
    reads: list[int | None] = []  # customers named by each facts read (None: every customer at once)
    real = store.customer_facts

    def noted(**kw):
        reads.append(None if kw.get("customers") is None else len(kw["customers"]))
        return real(**kw)

    monkeypatch.setattr(store, "customer_facts", noted)
    return reads


def test_an_audience_read_seven_customers_at_a_time_plans_exactly_what_one_whole_read_plans(store, tmp_path,
                                                                                           monkeypatch):
    rng = random.Random(13)
    history = History(store, rng)
    for _ in range(600):
        history.write()
    history.erase()
    clock = [T0 + timedelta(days=30)]
    deps = deps_for(store, tmp_path, clock)
    reads = counted_reads(store, monkeypatch)
    fitted = 0
    for k in range(40):
        audience = random_filter(rng)
        if k % 4 == 0:
            audience["p_alive"] = {"max": round(rng.uniform(0.3, 1.0), 2)}
        definition = Definition(name=f"d{k}", objective="promotion", channel=rng.choice(["sms", "wechat", "email"]),
                                audience=audience, control_share="0.3", starts_at=clock[0],
                                ends_at=clock[0] + timedelta(days=9))
        draft = commands.create(definition, by="test", idempotency_key=None, deps=deps)[0].id
        try:
            expected = whole_plan(draft, deps)
        except Conflict as exc:  # no churn model fits these histories: the chunked read says the same
            with pytest.raises(Conflict) as got:
                launching.read_audience(draft, definition=definition, deps=deps, as_of=clock[0], chunk=7)
            assert got.value.code == exc.code
            continue
        fitted += "p_alive" in audience
        reads.clear()
        read = launching.read_audience(draft, definition=definition, deps=deps, as_of=clock[0], chunk=7)
        found = launching.evaluate(draft, definition=definition, audience=read, deps=deps)
        assert reads and None not in reads and max(reads) <= 7
        assert (found.matched, found.excluded, found.members) == (expected.matched, expected.excluded,
                                                                   expected.members)
    assert fitted  # the churn-model filter's two passes were compared at least once


def test_a_launch_read_in_chunks_writes_the_members_touches_and_messages_of_the_whole_plan(store, tmp_path,
                                                                                          monkeypatch):
    history = History(store, random.Random(5))
    for _ in range(400):
        history.write()
    clock = [T0 + timedelta(days=30)]
    deps = deps_for(store, tmp_path, clock)
    monkeypatch.setattr(launching, "CHUNK", 7)
    monkeypatch.setattr(deps.config, "relay_chunk", 3)  # the outbox rows are added a few at a time too
    definition = Definition(name="all", objective="promotion", channel="sms", audience={}, control_share="0.3",
                            bonus_multiplier="2", starts_at=clock[0], ends_at=clock[0] + timedelta(days=9))
    campaign = commands.create(definition, by="test", idempotency_key=None, deps=deps)[0].id
    expected = whole_plan(campaign, deps)
    reads = counted_reads(store, monkeypatch)
    done = launching.launch(campaign, deps=deps)
    assert reads and None not in reads and max(reads) <= 7
    members = store.members(campaign)
    assert [(m.member_id, m.group, m.bucket, m.tier, m.age_band, m.home_store, m.returning, m.purchases,
             m.touches_before) for m in members] == [
        (m.customer_id, m.group, m.bucket, m.tier, m.age_band, m.home_store, m.returning, m.purchases,
         m.touches_before) for m in expected.members]
    treated = [m.customer_id for m in expected.members if m.group == "treatment"]
    assert treated and len(treated) < len(expected.members)
    figures = done.campaign.launch
    assert (figures["matched"], figures["excluded"], figures["treatment"], figures["control"], figures["touches"],
            figures["bonus_grants"]) == (expected.matched, {r: expected.excluded.get(r, 0) for r in
                                                            ("no_consent", "opted_out", "contact_cap")},
                                         len(treated), len(expected.members) - len(treated), len(treated),
                                         len(treated))
    touched = [m for m in done.sent.outbox if m.topic == topics.CAMPAIGN_TOUCHES]
    assert [m.key.decode() for m in touched] == treated
    assert [json.loads(m.value)["touch_id"] for m in touched] == [launching.touch_id(campaign, c) for c in treated]
    seqs = [m.seq for m in done.sent.outbox]
    assert len(set(seqs)) == len(seqs) and seqs == sorted(seqs)  # every row added once, in order
    assert store.touch_count(campaign) == len(treated)
