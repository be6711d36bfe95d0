"""The alerts service's composition root: the one place that builds its store, rules, faust app and API."""

from __future__ import annotations

from services.alerts import agents
from services.alerts import api as alerts_api
from services.alerts.config import AlertsConfig, RulesInForce
from services.alerts.handlers import Deps
from services.alerts.store import AlertsStore, open_store
from shared.clock import Clock, system_clock
from shared.service import Publish, Service, build_service
from shared.settings import Settings, get_settings

NAME = "alerts"


def create_app(
    settings: Settings | None = None,
    *,
    store: AlertsStore | None = None,
    publish: Publish | None = None,
    clock: Clock = system_clock,
    config: AlertsConfig | None = None,
) -> Service:
    """Build the alerts service; pass a store, a publish callable, a clock or its config to replace the real ones."""
    settings = settings or get_settings()
    config = config or AlertsConfig()
    store = store or open_store(settings.resolved_store_url())
    deps = Deps(store=store, settings=settings, config=config, rules=RulesInForce(config.rules_file), clock=clock)
    return build_service(name=NAME, title="CRM alerts", settings=settings, store=store, publish=publish,
                         clock=clock, deps=deps, routers=[alerts_api.router()], register=agents.register,
                         ready=lambda: store.due_count(until_ms=0))
