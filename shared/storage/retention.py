"""Retention: how old a kind of data may grow before its service's timer purges it.

A row is purged once it is *more* than the kind's days old: a dead letter kept at exactly ``now - days``
stays until the next tick, one a microsecond older goes. Days are counted on the service's clock, so a
test (or a replay set in the past) decides what "now" is.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from shared.clock import iso_utc
from shared.contract.facts import epoch_ms

log = logging.getLogger(__name__)


def cutoff(now: datetime, days: int) -> datetime | None:
    """The moment before which data ``days`` old is purged, or ``None`` when the kind is kept (0 days)."""
    return now - timedelta(days=days) if days > 0 else None


def purge_dead_letters(store: Any, *, now: datetime, settings: Any) -> int:
    """Delete the dead letters older than ``CRM_RETENTION_DEADLETTER_DAYS``; returns how many."""
    moment = cutoff(now, settings.retention_deadletter_days)
    return store.dead_letter_purge(before=iso_utc(moment)) if moment else 0


def purge_audit(store: Any, *, now: datetime, settings: Any) -> int:
    """Delete the audit entries older than ``CRM_RETENTION_AUDIT_DAYS``; returns how many."""
    moment = cutoff(now, settings.retention_audit_days)
    return store.audit_purge(before=iso_utc(moment)) if moment else 0


def purge_timeline(store: Any, *, now: datetime, settings: Any) -> int:
    """Drop the raw payloads of timeline events older than ``CRM_RETENTION_TIMELINE_DAYS``; returns how many."""
    moment = cutoff(now, settings.retention_timeline_days)
    return store.timeline_purge(before_ms=epoch_ms(moment)) if moment else 0


def register_retention(app: Any, *, name: str, interval_s: float, purge: Any) -> None:
    """A faust timer that runs ``purge()`` (a service's ``handlers.timers.purge_expired``) every ``interval_s``."""
    import asyncio

    async def run_purge():
        # A purge is idempotent and cheap when nothing is due: every worker may run it. A failure (a busy
        # store) waits for the next tick; it must not end the worker.
        try:
            await asyncio.get_running_loop().run_in_executor(None, purge)
        except Exception as exc:
            log.warning("%s: retention purge failed: %s", name, type(exc).__name__)

    app.timer(interval=interval_s, name=f"{name}.retention")(run_purge)
