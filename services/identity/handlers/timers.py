"""Identity's scheduled work: retention (raw timeline payloads, the audit log, dead letters)."""

from __future__ import annotations

from services.identity.handlers import Deps
from shared.storage import retention


def purge_expired(*, deps: Deps) -> dict[str, int]:
    """Purge what retention says is too old, as of the service's clock; how many rows of each kind."""
    now = deps.clock()
    return {
        "timeline": retention.purge_timeline(deps.store, now=now, settings=deps.settings),
        "audit": retention.purge_audit(deps.store, now=now, settings=deps.settings),
        "deadletters": retention.purge_dead_letters(deps.store, now=now, settings=deps.settings),
    }
