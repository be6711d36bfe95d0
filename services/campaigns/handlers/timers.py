"""Campaigns' scheduled work: launch scheduled campaigns whose start has come, complete those whose end has."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from services.campaigns.handlers import Deps, kept_results
from services.campaigns.handlers import preview as previews
from services.campaigns.handlers.launch import bulk_work, launch
from services.campaigns.handlers.outbox import relay_leased
from shared.clock import iso_utc
from shared.http.errors import DomainError
from shared.storage.base import OutboxMessage, is_transient

log = logging.getLogger(__name__)


def _where(exc: BaseException) -> str:
    """The innermost frame of a traceback, ``file:line`` (where a bug is, without the values it met)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else "?"


@dataclass
class Due:
    """What one scheduler pass did."""

    launched: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    # Left for the batch runner to relay: nothing, each launch's messages went under their lease.
    outbox: list[OutboxMessage] = field(default_factory=list)


def run_due(*, deps: Deps, relay: Callable[[list[OutboxMessage]], None]) -> Due:
    """Launch scheduled campaigns whose start has come and complete launched ones whose end has come.

    Every worker runs this on its timer; each launch re-checks the status inside its transaction,
    so a campaign launches once however many workers see it due. Each launch is relayed under its
    lease as soon as it commits, so a later failure in the same pass cannot hold its messages back.
    A campaign that cannot launch (its dates have passed, no churn model fits, a bug) goes back to
    draft with the reason, for ops to fix.
    """
    store, done = deps.store, Due()
    now = iso_utc(deps.clock())
    starting, ending = store.due(now=now)
    for campaign_id in starting:
        try:
            launched = launch(campaign_id, deps=deps)
        except Exception as exc:
            if is_transient(exc):
                raise  # the runner retries the whole pass
            # Anything else would end the worker (the runner exits on what it cannot retry) and, once
            # restarted, end it again on the same campaign: it goes back to draft for ops instead.
            reason = exc.message if isinstance(exc, DomainError) else (
                f"the launch failed unexpectedly ({type(exc).__name__}); see the logs")
            # The exception's text is not logged: it may quote a value of a customer's profile.
            with store.transaction():
                store.update_campaign(campaign_id, expect_status="scheduled", status="draft", last_error=reason,
                                      updated_at=now)
            if isinstance(exc, DomainError):
                log.warning("campaigns: scheduled launch of %s failed (%s); back to draft", campaign_id, exc.code)
            else:
                log.error("campaigns: scheduled launch of %s failed unexpectedly (%s at %s); back to draft",
                          campaign_id, type(exc).__name__, _where(exc))
            done.failed.append(campaign_id)
            continue
        if launched.launched_now:
            done.launched.append(campaign_id)
            relay_leased(launched.sent, deps=deps, relay=relay)
    for campaign_id in ending:
        # A launched campaign paused by ops completes at its end too: its touches went out at launch.
        with store.transaction():
            if any(store.update_campaign(campaign_id, expect_status=held, status="completed", paused_from=None,
                                         updated_at=now) for held in ("running", "paused")):
                done.completed.append(campaign_id)
    return done


# -- issue 12, retention (H5) ---------------------------------------------------------------------


def purge_expired(*, deps: Deps) -> dict[str, int]:
    """Purge the dead letters retention says are too old, as of the service's clock; how many."""
    from shared.storage import retention

    return {"deadletters": retention.purge_dead_letters(deps.store, now=deps.clock(), settings=deps.settings)}


def keep_preview(*, deps: Deps, warm: bool = False) -> None:
    """Build the audience preview's index (``warm``, at start-up) or bring it forward while people preview; a
    failure is logged, and the next tick (or the next preview) tries again."""
    try:
        if warm:
            previews.warm(deps.store)
        else:
            previews.keep_current(deps.store, while_used_s=deps.config.preview_keep_s)
    except Exception as exc:
        log.exception("campaigns: keeping the preview's index failed (%s at %s)", type(exc).__name__, _where(exc))


def keep_results(*, deps: Deps, warm: bool = False) -> list[str]:
    """Measure the results of the campaigns a person is likely to open (``warm``, at start-up) or bring them
    forward while people read results; the ids kept. A failure is logged, and the next tick (or the next
    request) tries again."""
    try:
        with bulk_work():
            return kept_results.keep(deps=deps, while_read_s=None if warm else deps.config.results_keep_s)
    except Exception as exc:
        log.exception("campaigns: keeping results failed (%s at %s)", type(exc).__name__, _where(exc))
        return []
