"""Identity's composition root: the one place that builds its store, producer, faust app and API."""

from __future__ import annotations

from services.identity import agents
from services.identity import api as identity_api
from services.identity.domain import Cleaning
from services.identity.handlers import Deps
from services.identity.store import IdentityStore, open_store
from shared.clock import Clock, system_clock
from shared.privacy import Pseudonymizer
from shared.service import Publish, Service, build_service
from shared.settings import Settings, get_settings

NAME = "identity"


def create_app(
    settings: Settings | None = None,
    *,
    store: IdentityStore | None = None,
    publish: Publish | None = None,
    clock: Clock = system_clock,
) -> Service:
    """Build the identity service; pass a store, a publish callable or a clock to replace the real ones."""
    settings = settings or get_settings()
    store = store or open_store(settings.resolved_store_url())
    cleaning = Cleaning(region=settings.default_region, blocked_phones=settings.blocked_phone_set(),
                        blocked_values=settings.blocked_identifier_set(), currencies=settings.currency_set())
    deps = Deps(store=store, pseudo=Pseudonymizer(settings.secret_bytes()), cleaning=cleaning,
                settings=settings, clock=clock)
    return build_service(name=NAME, title="CRM identity", settings=settings, store=store, publish=publish,
                         clock=clock, deps=deps, routers=[identity_api.router()], register=agents.register,
                         ready=store.customer_count)
