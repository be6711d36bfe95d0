"""The alerts service's composition root: the one place that picks its store adapter and builds its rules,
``Deps``, faust app and API."""

from __future__ import annotations

from services.alerts import agents
from services.alerts import api as alerts_api
from services.alerts.config import AlertsConfig, RulesInForce
from services.alerts.handlers import Deps
from services.alerts.reports_attendance_api import reports_attendance_router
from services.alerts.reports_clv_api import reports_clv_router
from services.alerts.reports_kpi_api import reports_kpi_router
from services.alerts.reports_satisfaction_api import reports_satisfaction_router
from services.alerts.reports_value_api import reports_value_router
from services.alerts.store import AlertsStore
from shared.access.audit import auditor
from shared.clock import Clock, system_clock
from shared.service import Publish, Service, build_service
from shared.settings import Settings, get_settings
from shared.storage.base import mongo_database, sqlite_path, store_kind
from shared.webhooks import api as webhooks_api
from shared.webhooks.config import WebhooksConfig
from shared.webhooks.host import Webhooks, build_webhooks

NAME = "alerts"


def open_store(url: str, *, mongo_client=None, master_key: bytes | None = None) -> AlertsStore:
    """The alerts store for ``CRM_STORE_URL``: SQLite by default, MongoDB for a ``mongodb://`` URL."""
    if store_kind(url) == "sqlite":
        from services.alerts.store.sqlite import SqliteAlertsStore

        return SqliteAlertsStore(sqlite_path(url, "alerts"), master_key=master_key)
    from services.alerts.store.mongo import MongoAlertsStore

    return MongoAlertsStore(mongo_database(url, "alerts", mongo_client), master_key=master_key)


def open_webhooks(store: AlertsStore, *, clock: Clock, config: WebhooksConfig | None = None) -> Webhooks:
    """The webhook subscriptions and deliveries, in the alerts database (so in its store transactions), their
    secrets sealed under its keyring."""
    if getattr(store, "db", None) is not None:
        from shared.webhooks.sqlite import SqliteWebhookStore

        return build_webhooks(SqliteWebhookStore(store.db, keys=store.keys), clock=clock, config=config)
    from shared.webhooks.mongo import MongoWebhookStore

    return build_webhooks(MongoWebhookStore(store.mdb, keys=store.keys), clock=clock, config=config)


def create_app(
    settings: Settings | None = None,
    *,
    store: AlertsStore | None = None,
    publish: Publish | None = None,
    clock: Clock = system_clock,
    config: AlertsConfig | None = None,
    webhooks: WebhooksConfig | None = None,
) -> Service:
    """Build the alerts service; pass a store, a publish callable, a clock or its config to replace the real ones."""
    settings = settings or get_settings()
    config = config or AlertsConfig()
    store = store or open_store(settings.resolved_store_url(), master_key=settings.master_key_bytes())
    deps = Deps(store=store, settings=settings, config=config, rules=RulesInForce(config.rules_file), clock=clock)
    # Issue 14: webhooks are hosted here (routes on this port, the recording agent and dispatcher in this worker).
    deps.webhooks = open_webhooks(store, clock=clock, config=webhooks)
    hooks_router = webhooks_api.router(deps.webhooks, audit=auditor(NAME, deps))
    routers = [alerts_api.router(deps), hooks_router]
    routers.append(reports_attendance_router(deps))  # issue 15: the attendance sheet
    routers.append(reports_clv_router(deps))  # issue 15: the CLV model and each customer's value
    routers.append(reports_satisfaction_router(deps))  # issue 15: NPS, CSAT, loyal share, churn reasons
    routers.append(reports_kpi_router(deps))  # issue 15, kpi
    routers.append(reports_value_router(deps))  # issue 15: pyramid, RFM and lifecycle
    service = build_service(name=NAME, title="CRM alerts", settings=settings, store=store, publish=publish,
                            clock=clock, deps=deps, routers=routers,
                            register=agents.register,
                            ready=lambda: store.due_count(until_ms=0))
    deps.relay = service.relay
    return service
