"""Issue 16, search by name: the customers a caller may see whose name is the one typed, and the blind index
rebuilt at start when it was built before it existed or under another key."""

from __future__ import annotations

from services.identity.handlers import Deps
from services.identity.handlers.queries import view
from services.identity.schemas import CustomersPage
from shared.access.visibility import Visibility
from shared.clock import iso_utc
from shared.http.errors import NotFound


def customers_named(name: str, *, deps: Deps, seeing: Visibility, offset: int, limit: int) -> CustomersPage:
    """The customers in the caller's scope one of whose records is named ``name`` now (full-width or
    half-width, case and spaces aside), by id, each as the single customer view, masked; 404 when none on the
    first page, as a lookup that finds nobody (so a guess counts against the lookup miss budget)."""
    ids = deps.store.customers_named(name, stores=seeing.stores, offset=offset, limit=limit)
    if not ids and offset == 0:
        # Never the name itself: it is the customer's personal data (nor in a log, through the message).
        raise NotFound("customer_not_found", "no customer you may see has that name")
    return CustomersPage(items=[view(c, deps=deps, reveal=False) for c in ids], offset=offset, limit=limit)


def rebuild_name_index(*, deps: Deps) -> bool:
    """At start: the names' index rebuilt from the sealed names when this key did not build it (names kept
    before search by name existed, or a changed CRM_IDENTITY_NAME_INDEX_KEY); one marker lookup otherwise."""
    with deps.store.transaction():
        return deps.store.rebuild_name_index(at=iso_utc(deps.clock()))
