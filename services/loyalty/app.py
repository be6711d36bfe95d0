"""Loyalty's composition root: the one place that builds its store, rules, producer, faust app and API."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from services.loyalty import agents
from services.loyalty import api as loyalty_api
from services.loyalty.accounts import Deps, RulesSource
from services.loyalty.config import LoyaltySettings, shifted_clock
from services.loyalty.store import LoyaltyStore, open_store
from shared.clock import Clock, system_clock
from shared.service import Publish, Service, build_service
from shared.settings import Settings, get_settings

NAME = "loyalty"


def create_app(
    settings: Settings | None = None,
    *,
    store: LoyaltyStore | None = None,
    publish: Publish | None = None,
    clock: Clock = system_clock,
    config: LoyaltySettings | None = None,
) -> Service:
    """Build the loyalty service; pass a store, a publish callable, a clock or its settings to replace them."""
    settings = settings or get_settings()
    config = config or LoyaltySettings()
    if config.clock_start is not None and clock is system_clock:
        clock = shifted_clock(config.clock_start)
    store = store or open_store(settings.resolved_store_url())
    zone = ZoneInfo(settings.timezone)
    deps = Deps(store=store, settings=settings, config=config, rules=RulesSource(config, zone), clock=clock,
                zone=zone)
    return build_service(name=NAME, title="CRM loyalty", settings=settings, store=store, publish=publish,
                         clock=clock, deps=deps, routers=[loyalty_api.router()], register=agents.register,
                         ready=store.account_count)
