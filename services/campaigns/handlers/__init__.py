"""Campaigns use cases (consume facts, define and move campaigns, launch, report, timers) and their ``Deps``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from services.campaigns.config import CampaignsSettings
from services.campaigns.store import CampaignsStore
from shared.clock import Clock
from shared.settings import Settings
from shared.storage.base import OutboxMessage


@dataclass
class Deps:
    """What the handlers need, passed in: store, platform settings, campaigns settings, clock, and the relay
    that publishes what a route committed (``app`` binds it to the service's runner)."""

    store: CampaignsStore
    settings: Settings
    config: CampaignsSettings
    clock: Clock
    relay: Callable[[list[OutboxMessage]], None] | None = None
