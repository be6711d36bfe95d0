"""Identity's composition root: the one place that picks its store adapter and builds its deps, producer,
faust app and API."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from services.identity import agents, search_api
from services.identity import api as identity_api
from services.identity import api_auth as auth_api
from services.identity import api_imports as imports_api
from services.identity.config import IdentityConfig
from services.identity.domain.cleaning import Cleaning
from services.identity.handlers import Deps, consume, names
from services.identity.store import IdentityStore
from shared.access.revocations import StoreRevocations
from shared.clock import Clock, system_clock
from shared.privacy import Pseudonymizer
from shared.service import Publish, Service, build_service
from shared.settings import Settings, get_settings
from shared.storage.base import mongo_database, sqlite_path, store_kind

NAME = "identity"


def open_store(url: str, *, mongo_client=None, master_key: bytes | None = None,
               name_key: bytes | None = None) -> IdentityStore:
    """The identity store for ``CRM_STORE_URL`` (``name_key``: the names' index key, see ``IdentityConfig``)."""
    if store_kind(url) == "sqlite":
        from services.identity.store.sqlite import SqliteIdentityStore

        return SqliteIdentityStore(sqlite_path(url, "identity"), master_key=master_key, name_key=name_key)
    from services.identity.store.mongo import MongoIdentityStore

    return MongoIdentityStore(mongo_database(url, "identity", mongo_client), master_key=master_key,
                              name_key=name_key)


def create_app(
    settings: Settings | None = None,
    *,
    store: IdentityStore | None = None,
    publish: Publish | None = None,
    clock: Clock = system_clock,
    config: IdentityConfig | None = None,
    peer_get: Callable[[str, str, Mapping[str, str]], Any] | None = None,
) -> Service:
    """Build the identity service; pass a store, a publish callable or a clock to replace the real ones."""
    settings = settings or get_settings()
    config = config or IdentityConfig()
    # Read first: in prod a missing name index key stops the start here, before any store is opened.
    name_key = config.name_index_key_bytes(settings.env)
    store = store or open_store(settings.resolved_store_url(), master_key=settings.master_key_bytes(),
                                name_key=name_key)
    cleaning = Cleaning(region=settings.default_region, blocked_phones=settings.blocked_phone_set(),
                        blocked_values=settings.blocked_identifier_set(), currencies=settings.currency_set())
    # Publish, relay and runner are the service's, built below: late-bound, looked up when a route needs them.
    deps = Deps(store=store, pseudo=Pseudonymizer(settings.secret_bytes()), cleaning=cleaning, settings=settings,
                config=config, clock=clock, publish=lambda messages: service.publish(messages),
                relay=lambda outbox: service.relay(outbox), runner=lambda: service.runner,
                peer_get=peer_get or _http_peer(settings, config))
    service = build_service(name=NAME, title="CRM identity", settings=settings, store=store, publish=publish,
                            clock=clock, deps=deps, register=agents.register, ready=store.customer_count,
                            # Search first: its path would otherwise be taken for /customers/{customer_id}.
                            routers=[search_api.router(deps), identity_api.router(deps), auth_api.router(deps),
                                     imports_api.router(deps)])
    # Identity keeps the signed-out tokens: it looks each one up in its store, so sign-out holds here at once.
    service.api.state.auth.revocations = StoreRevocations(store.token_revoked)
    # Owning stores of customers whose complaints predate complaint_stores: what it announces is published by
    # the outbox sweep every worker runs (nothing connects here).
    consume.backfill_complaint_owners(deps=deps)
    names.rebuild_name_index(deps=deps)  # issue 16: names kept before their index, or under another key
    return service


def _http_peer(settings: Settings, config: IdentityConfig) -> Callable[[str, str, Mapping[str, str]], httpx.Response]:
    """GET from another service's API (what the export route gathers): at its URL from
    ``CRM_IDENTITY_PEER_URLS``, else on its port from settings on this host."""
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::", "") else settings.api_host

    def get(name: str, path: str, headers: Mapping[str, str]) -> httpx.Response:
        base = config.peer_url(name) or f"http://{host}:{getattr(settings, f'{name}_port')}"
        return httpx.get(f"{base}{path}", headers=dict(headers), timeout=10)

    return get
