"""Campaigns' composition root: the one place that builds its store, settings, faust agents and API."""

from __future__ import annotations

from services.campaigns import agents
from services.campaigns import api as campaigns_api
from services.campaigns.config import CampaignsSettings
from services.campaigns.handlers import Deps
from services.campaigns.store import CampaignsStore
from shared.clock import Clock, system_clock
from shared.service import Publish, Service, build_service
from shared.settings import Settings, get_settings

NAME = "campaigns"


def open_store(url: str, *, mongo_client=None, master_key: bytes | None = None) -> CampaignsStore:
    """The campaigns store for ``CRM_STORE_URL``."""
    from shared.storage.base import mongo_database, sqlite_path, store_kind

    if store_kind(url) == "sqlite":
        from services.campaigns.store.sqlite import SqliteCampaignsStore

        return SqliteCampaignsStore(sqlite_path(url, "campaigns"), master_key=master_key)
    from services.campaigns.store.mongo import MongoCampaignsStore

    return MongoCampaignsStore(mongo_database(url, "campaigns", mongo_client), master_key=master_key)


def create_app(
    settings: Settings | None = None,
    *,
    store: CampaignsStore | None = None,
    publish: Publish | None = None,
    clock: Clock = system_clock,
    config: CampaignsSettings | None = None,
) -> Service:
    """Build the campaigns service; pass a store, a publish callable, a clock or settings to replace the real ones."""
    settings = settings or get_settings()
    config = config or CampaignsSettings()
    store = store or open_store(settings.resolved_store_url(), master_key=settings.master_key_bytes())
    # What a route commits is relayed by the service's runner (bound late: the service is built below).
    deps = Deps(store=store, settings=settings, config=config, clock=clock,
                relay=lambda outbox: service.relay(outbox))
    service = build_service(name=NAME, title="CRM campaigns", settings=settings, store=store, publish=publish,
                            clock=clock, deps=deps, routers=[campaigns_api.router(deps)], register=agents.register,
                            ready=lambda: store.campaign_count(status="running"))
    return service
