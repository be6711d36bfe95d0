"""Identity's use cases: ``consume`` (channel events and view parts), ``commands`` (behind the HTTP
routes that change something) and ``queries`` (the single customer view and the lists routes read)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from services.identity.config import IdentityConfig
from services.identity.domain.cleaning import Cleaning, Pseudo
from services.identity.store import IdentityStore
from shared.clock import Clock
from shared.service import Publish
from shared.settings import Settings
from shared.storage.base import OutboxMessage
from shared.streaming.consumer import BatchRunner


@dataclass
class Deps:
    """What the handlers need, passed in: store, pseudonyms, rules, settings, clock; and from the service
    (set by ``app.py``) the broker publish, the outbox relay and the batch runner that tracks health."""

    store: IdentityStore
    pseudo: Pseudo
    cleaning: Cleaning
    settings: Settings
    clock: Clock
    config: IdentityConfig = field(default_factory=IdentityConfig)
    publish: Publish | None = None
    relay: Callable[[list[OutboxMessage]], None] | None = None
    runner: Callable[[], BatchRunner] | None = None  # built on first use: it owns a thread pool
    # Issue 12 (export): GET a path on another service's API with these headers; app.py's default calls
    # it over HTTP on its port from settings, tests pass the other services' in-process apps.
    peer_get: Callable[[str, str, Mapping[str, str]], Any] | None = None
