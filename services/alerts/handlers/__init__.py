"""The alerts use cases: ``consume`` (messages), ``commands`` (behind the HTTP routes), ``timers`` (the scan and
the churn-model refit); ``evaluation`` is the step they all end with. ``Deps`` is what each is given."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from services.alerts.config import AlertsConfig, RulesInForce
from services.alerts.store import AlertsStore
from shared.clock import Clock
from shared.settings import Settings
from shared.storage.base import OutboxMessage
from shared.webhooks.host import Webhooks


@dataclass
class Deps:
    """What the handlers need, passed in: store, settings, rules, clock."""

    store: AlertsStore
    settings: Settings
    config: AlertsConfig
    rules: RulesInForce
    clock: Clock
    # The last ranking of the whole base under the churn model: (key, monotonic time, rows); pages share it.
    ranking: tuple | None = None
    # Publishes an outbox committed outside a batch (a route's): the service's relay, set by ``app.create_app``.
    relay: Callable[[list[OutboxMessage]], None] | None = None
    # Issue 14: the webhook parts this service hosts (shared/webhooks), set by ``app.create_app``.
    webhooks: Webhooks | None = None
    # Held while a model is fitted (churn or CLV, any as_of): a request for a fit in flight waits for it and reads
    # the kept fit instead of starting a second (each is seconds of CPU at 100,000 customers).
    fitting: threading.RLock = field(default_factory=threading.RLock)

    @property
    def zone(self) -> ZoneInfo:
        """The timezone alert days are counted in."""
        return ZoneInfo(self.settings.timezone)
