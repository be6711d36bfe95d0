"""Identity's composition root: the one place that builds its store, producer, faust app and API."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from fastapi import FastAPI

from services.identity import api as identity_api
from services.identity.domain import Cleaning
from services.identity.handlers import Deps
from services.identity.store import IdentityStore, open_store
from shared.api import service_api
from shared.clock import Clock, system_clock
from shared.kafka import Outgoing, Publisher
from shared.metrics import ServiceMetrics
from shared.privacy import Pseudonymizer
from shared.settings import Settings, get_settings

NAME = "identity"


@dataclass
class IdentityService:
    """Everything identity runs with; tests build one with fakes through ``create_app``."""

    settings: Settings
    deps: Deps
    metrics: ServiceMetrics
    publish: Callable[[list[Outgoing]], None]
    api: FastAPI = field(init=False)
    runner: object | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.settings.timezone)

    def relay(self, outbox) -> None:
        """Publish outbox messages written by an API call, then forget them."""
        from shared.consumer import BatchRunner

        runner = self.runner or BatchRunner(name=NAME, metrics=self.metrics, publish=self.publish,
                                            delete_outbox=self.deps.store.outbox_delete)
        runner.relay(outbox)

    def faust_app(self):
        """The faust app with identity's agents (built on demand: nothing connects at import)."""
        from services.identity import agents
        from shared.kafka import faust_app

        app = faust_app(NAME, self.settings)
        agents.register(app, self)
        return app


def create_app(
    settings: Settings | None = None,
    *,
    store: IdentityStore | None = None,
    publish: Callable[[list[Outgoing]], None] | None = None,
    clock: Clock = system_clock,
) -> IdentityService:
    """Build the identity service; pass a store, a publish callable or a clock to replace the real ones."""
    settings = settings or get_settings()
    store = store or open_store(settings.resolved_store_url())
    if publish is None:
        publish = _lazy_publisher(settings)
    cleaning = Cleaning(region=settings.default_region, blocked_phones=settings.blocked_phone_set(),
                        blocked_values=settings.blocked_identifier_set())
    deps = Deps(store=store, pseudo=Pseudonymizer(settings.secret_bytes()), cleaning=cleaning,
                settings=settings, clock=clock)
    metrics = ServiceMetrics(NAME)
    service = IdentityService(settings=settings, deps=deps, metrics=metrics, publish=publish)
    checks = {"store": store.customer_count, "broker": lambda: _broker_reachable(settings)}
    service.api = service_api("CRM identity", settings, [identity_api.router()], checks, metrics.registry)
    service.api.state.service = service
    return service


def _lazy_publisher(settings: Settings) -> Callable[[list[Outgoing]], None]:
    holder: list[Publisher] = []
    lock = threading.Lock()

    def publish(messages: list[Outgoing]) -> None:
        with lock:
            if not holder:
                holder.append(Publisher(settings, client_id=f"crm-{NAME}"))
        holder[0].send(messages)

    return publish


def _broker_reachable(settings: Settings) -> None:
    import socket

    host, _, port = settings.kafka_bootstrap.split(",")[0].rpartition(":")
    with socket.create_connection((host or "127.0.0.1", int(port)), timeout=2):
        pass
