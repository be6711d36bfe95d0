"""Launching: freeze the audience, split it, send treatment touches and bonuses, all in one transaction.

A campaign launches once: launching it again (a retried request, a second worker's timer, a replay)
returns the launch that happened and sends nothing. Everything is set-based: one pass over the
customers' facts (a chunk of customers at a time, keeping only the matches), bulk inserts of members and
touches, outbox rows written in bulk.
"""

from __future__ import annotations

import gc
import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.campaigns.domain import scoring
from services.campaigns.domain.audience import (
    EXCLUSION_REASONS,
    Matched,
    Plan,
    Tally,
    candidates,
    launch_fields,
    settle,
)
from services.campaigns.domain.definition import Definition, next_status
from services.campaigns.handlers import Deps
from services.campaigns.handlers import preview as fast
from services.campaigns.handlers.commands import bonus_message, definition_of, get
from services.campaigns.handlers.outbox import Leased, lease, outbox_message
from services.campaigns.handlers.view_part import refresh_views
from services.campaigns.store import CampaignRow, MemberRow, TouchRow
from shared.clock import iso_utc
from shared.contract import topics
from shared.contract.facts import epoch_ms
from shared.contract.messages import CampaignTouched
from shared.http.errors import Conflict
from shared.observability.trace_context import inject_headers, tracer
from shared.storage.base import OutboxMessage

log = logging.getLogger(__name__)
_tracer = tracer(__name__)
DAY_MS = 86_400_000


@contextmanager
def bulk_work() -> Iterator[None]:
    """Pause the cyclic garbage collector while a launch or a report builds hundreds of thousands of
    short-lived, acyclic objects: reference counting frees them, and collections triggered by the
    sheer number of allocations would otherwise take a third of a 100,000-customer launch."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def touch_id(campaign_id: str, customer_id: str) -> str:
    """The touch of one treatment member (the same on every launch and replay)."""
    return "t_" + hashlib.sha256(f"touch\x00{campaign_id}\x00{customer_id}".encode()).hexdigest()[:24]


CHUNK = 5_000  # customers whose facts are read at once (as the preview: every customer at once peaked at 613 MB)


@dataclass(frozen=True)
class Audience:
    """What an audience is evaluated from: the matches found over every customer's facts (before the contact
    cap), recent touches per customer, the day."""

    found: Matched
    recent: dict[str, int]
    on: date


def recent_touches(*, deps: Deps, as_of_ms: int) -> dict[str, int]:
    """Touches per customer within the contact-cap period either side of a moment: a launch that
    committed while this one was reading (by a clock a moment later) counts as much as an earlier one."""
    span = deps.config.contact_cap_days * DAY_MS
    return deps.store.touch_counts(since_ms=as_of_ms - span, until_ms=as_of_ms + span)


def read_audience(campaign_id: str, *, definition: Definition, deps: Deps, as_of: datetime,
                  chunk: int | None = None) -> Audience:
    """Read what the audience is evaluated from, as of a moment (takes no write lock), ``chunk`` customers'
    facts at a time: only the matches are kept. A churn-model filter first collects every customer's
    history a chunk at a time, to fit the model once over everyone."""
    store, chunk = deps.store, chunk or CHUNK
    as_of_ms = epoch_ms(as_of)
    on = as_of.astimezone(ZoneInfo(deps.settings.timezone)).date()
    fields, categories = launch_fields(definition), definition.audience.categories is not None
    with _tracer.start_as_current_span("campaigns read audience", attributes={"crm.campaign_id": campaign_id}):
        ids = store.customer_ids()
        chunks = [ids[i:i + chunk] for i in range(0, len(ids), chunk)]
        scores = None
        if definition.audience.p_alive is not None:
            histories = {}
            for part in chunks:
                histories.update((f.customer_id, h) for f in store.customer_facts(
                    as_of_ms=as_of_ms, fields=(), categories=False, customers=part)
                    if (h := scoring.history_of(f, on)) is not None)
            scores = scoring.scores(histories, on)
        found = Matched()
        for part in chunks:
            facts = store.customer_facts(as_of_ms=as_of_ms, fields=fields, categories=categories, customers=part)
            found.add(candidates(campaign_id, definition, facts, on=on, p_alive=scores))
        return Audience(found, recent_touches(deps=deps, as_of_ms=as_of_ms), on)


def evaluate(campaign_id: str, *, definition: Definition, audience: Audience, deps: Deps) -> Plan:
    """Who the campaign reaches: matches, exclusions by reason, the split."""
    with _tracer.start_as_current_span("campaigns evaluate audience", attributes={"crm.campaign_id": campaign_id}):
        return settle(audience.found, recent_touches=audience.recent, cap=deps.config.contact_cap)


def summary(found: Tally, *, as_of: datetime, touches: int, grants: int) -> dict[str, Any]:
    """The launch figures kept with the campaign (or previewed)."""
    return {"as_of": iso_utc(as_of), "matched": found.matched,
            "excluded": {r: found.excluded.get(r, 0) for r in EXCLUSION_REASONS},
            "members": found.treatment + found.control, "treatment": found.treatment, "control": found.control,
            "touches": touches, "bonus_grants": grants}


def preview(campaign_id: str, *, deps: Deps) -> dict[str, Any]:
    """What launching now would do, without doing it: counted from the kept index of customers' facts
    (``handlers.preview``), or the launch's way for a filter the index cannot evaluate."""
    row = get(campaign_id, deps=deps)
    now = deps.clock()
    definition = definition_of(row)
    with bulk_work():
        found = fast.tally(campaign_id, definition, deps=deps, as_of=now)
        if found is None:
            audience = read_audience(campaign_id, definition=definition, deps=deps, as_of=now)
            found = evaluate(campaign_id, definition=definition, audience=audience, deps=deps).tally()
    return summary(found, as_of=now, touches=found.treatment,
                   grants=found.treatment if definition.bonus_multiplier else 0)


@dataclass
class Launched:
    """A launch (or the one that happened before) and the messages to publish, leased to their relay."""

    campaign: CampaignRow
    launched_now: bool
    sent: Leased = field(default_factory=Leased)


def _launchable(campaign_id: str, *, deps: Deps, now: datetime) -> tuple[CampaignRow, Definition | None]:
    row = get(campaign_id, deps=deps)
    if row.launched_at is not None:
        return row, None
    next_status(row.status, "launch")
    definition = definition_of(row)
    if definition.ends_at <= now:
        raise Conflict("campaign_ended", "ends_at has passed; edit the dates before launching")
    return row, definition


def launch(campaign_id: str, *, deps: Deps) -> Launched:
    """Launch now; a campaign launched before is returned as it is."""
    now = deps.clock()
    row, definition = _launchable(campaign_id, deps=deps, now=now)
    if definition is None:
        return Launched(row, False)
    with bulk_work():
        return _launch(campaign_id, definition, deps=deps, now=now)


def _launch(campaign_id: str, definition: Definition, *, deps: Deps, now: datetime) -> Launched:
    store = deps.store
    # Reading the facts takes no write lock; the writes below re-check that nobody launched meanwhile.
    audience = read_audience(campaign_id, definition=definition, deps=deps, as_of=now)
    found = evaluate(campaign_id, definition=definition, audience=audience, deps=deps)
    with store.transaction():
        row, again = _launchable(campaign_id, deps=deps, now=now)
        if again is None:
            return Launched(row, False)
        if again != definition:
            raise Conflict("concurrent_change", "the campaign was edited meanwhile; launch it again")
        at_ms, window = epoch_ms(now), definition.window_ms()
        # Another campaign may have launched while the audience was read: its touches count against the
        # cap too. Launches write one at a time, so what is read here stays true until this one commits.
        recent = recent_touches(deps=deps, as_of_ms=at_ms)
        if recent != audience.recent:
            found = evaluate(campaign_id, definition=definition, audience=replace(audience, recent=recent),
                             deps=deps)
        store.add_members([MemberRow(campaign_id, m.customer_id, m.group, at_ms, window, m.bucket, m.tier,
                                     m.age_band, m.home_store, m.returning, purchases=m.purchases,
                                     touches_before=m.touches_before) for m in found.members])
        treated = {m.customer_id: touch_id(campaign_id, m.customer_id) for m in found.members
                   if m.group == "treatment"}
        store.add_touches([TouchRow(t, campaign_id, c, definition.channel, at_ms) for c, t in treated.items()])
        grants = len(treated) if definition.bonus_multiplier else 0
        figures = summary(found.tally(), as_of=now, touches=len(treated), grants=grants)
        if not store.update_campaign(campaign_id, expect_status=row.status, status="running",
                                     launched_at=iso_utc(now), launch=figures, updated_at=iso_utc(now),
                                     last_error=None):
            raise Conflict("concurrent_change", "the campaign changed meanwhile; try again")
        out = _announce(campaign_id, definition, treated, deps=deps, at=now)
        out += refresh_views([m.customer_id for m in found.members], deps=deps)
        sent = lease(out, deps=deps)
        log.info("campaigns: launched %s: %d members, %d touches", campaign_id, len(found.members), len(treated))
        return Launched(get(campaign_id, deps=deps), True, sent)


def _announce(campaign_id: str, definition: Definition, treated: dict[str, str], *, deps: Deps,
              at: datetime) -> list[OutboxMessage]:
    """A touch per treatment member (and a bonus grant when the campaign has a multiplier)."""
    headers = inject_headers()  # one trace context for the whole launch
    out = [outbox_message(deps, topics.CAMPAIGN_TOUCHES, c,
                          CampaignTouched(touch_id=t, campaign_id=campaign_id, customer_id=c,
                                          channel=definition.channel, offer=definition.offer, at=at), headers)
           for c, t in treated.items()]
    if definition.bonus_multiplier:
        out += [bonus_message(campaign_id, c, definition, active=True, at=at, deps=deps, headers=headers)
                for c in treated]
    return out
