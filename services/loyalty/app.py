"""Loyalty's composition root: the one place that builds its store, rules, producer, faust app and API."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from services.loyalty import agents
from services.loyalty import api as loyalty_api
from services.loyalty.config import LoyaltySettings, RulesSource, shifted_clock
from services.loyalty.handlers import Deps
from services.loyalty.store import LoyaltyStore
from shared.clock import Clock, system_clock
from shared.service import Publish, Service, build_service
from shared.settings import Settings, get_settings
from shared.storage.base import OutboxMessage

NAME = "loyalty"


def open_store(url: str, *, mongo_client=None, master_key: bytes | None = None) -> LoyaltyStore:
    """The loyalty store for ``CRM_STORE_URL``."""
    from shared.storage.base import mongo_database, sqlite_path, store_kind

    if store_kind(url) == "sqlite":
        from services.loyalty.store.sqlite import SqliteLoyaltyStore

        return SqliteLoyaltyStore(sqlite_path(url, "loyalty"), master_key=master_key)
    from services.loyalty.store.mongo import MongoLoyaltyStore

    return MongoLoyaltyStore(mongo_database(url, "loyalty", mongo_client), master_key=master_key)


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
    store = store or open_store(settings.resolved_store_url(), master_key=settings.master_key_bytes())
    zone = ZoneInfo(settings.timezone)

    def relay(outbox: list[OutboxMessage]) -> None:
        service.relay(outbox)  # the service is built below, before any route can run

    deps = Deps(store=store, settings=settings, config=config, rules=RulesSource(config, zone), clock=clock,
                zone=zone, relay=relay)
    service = build_service(name=NAME, title="CRM loyalty", settings=settings, store=store, publish=publish,
                            clock=clock, deps=deps, routers=[loyalty_api.router(deps)], register=agents.register,
                            ready=store.account_count)
    return service
