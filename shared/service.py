"""What every service process is made of, built once per process by its ``app.create_app``.

A service has settings, a store (its own data plus outbox and dead letters), metrics, a publish
callable, a clock, an HTTP API and a faust app whose agents the service registers itself.
Tests build one with fakes (an in-memory store, a list as ``publish``, a fixed clock).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI

from shared.clock import Clock
from shared.http.api import service_api
from shared.observability.metrics import ServiceMetrics
from shared.settings import Settings
from shared.storage.base import DeadLetter, OutboxMessage
from shared.streaming.consumer import BatchRunner
from shared.streaming.kafka import Sendable, broker_reachable

Publish = Callable[[Sequence[Sendable]], None]


@dataclass
class Service:
    """One service's running parts; ``deps`` holds what its handlers need."""

    name: str
    settings: Settings
    store: Any
    publish: Publish
    clock: Clock
    deps: Any
    register: Callable[[Any, Service], None]
    metrics: ServiceMetrics = field(init=False)
    api: FastAPI = field(init=False)
    _runner: BatchRunner | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.metrics = ServiceMetrics(self.name)

    @property
    def runner(self) -> BatchRunner:
        """The batch runner: retries transient failures and relays the outbox."""
        if self._runner is None:
            self._runner = BatchRunner(name=self.name, metrics=self.metrics, publish=self.publish,
                                       delete_outbox=self.store.outbox_delete, publish_failed=self._publish_failed,
                                       stall_after_s=self.settings.stall_after_s)
        return self._runner

    def _publish_failed(self, message: OutboxMessage, letter: DeadLetter) -> None:
        # One transaction: the message leaves the outbox only once its dead letter is kept.
        with self.store.transaction():
            self.store.dead_letter_add(letter)
            if message.seq is not None:
                self.store.outbox_delete([message.seq])

    def relay(self, outbox: list[OutboxMessage]) -> None:
        """Publish outbox messages an API call committed, then forget them."""
        self.runner.relay(outbox)

    def faust_app(self):
        """The faust app with this service's agents (built on demand: nothing connects at import)."""
        from shared.streaming.kafka import faust_app

        app = faust_app(self.name, self.settings)
        self.register(app, self)
        return app


def build_service(*, name: str, title: str, settings: Settings, store: Any, publish: Publish | None, clock: Clock,
                  deps: Any, routers: list[APIRouter], register: Callable[[Any, Service], None],
                  ready: Callable[[], object]) -> Service:
    """A service with its API in place: auth, errors, health (store and broker), metrics, its routers."""
    from shared.http.deadletters import router as deadletters_router
    from shared.streaming.kafka import lazy_publisher

    service = Service(name=name, settings=settings, store=store, publish=publish or lazy_publisher(settings, name),
                      clock=clock, deps=deps, register=register)
    for backend, attr in (("sqlite", "db"), ("mongodb", "mdb")):
        db = getattr(store, attr, None)
        if db is not None and hasattr(db, "observe"):
            db.observe = service.metrics.store_seconds(backend).observe
    # "progress": reachable is not enough; a broker that takes connections but acknowledges nothing, or a
    # store that stays locked, leaves the service unable to do its work.
    checks = {"store": ready, "broker": lambda: broker_reachable(settings),
              "progress": lambda: service.runner.check_progress()}
    service.api = service_api(title, settings, [*routers, deadletters_router()], checks, service.metrics.registry)
    service.api.state.service = service
    return service
