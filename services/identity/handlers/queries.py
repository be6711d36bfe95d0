"""Identity's reads behind the HTTP routes: the single customer view, lookup by identifier, the timeline,
merges, conflicts and the operations summary. They gather rows from the store; ``views.py`` maps them."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from services.identity import views
from services.identity.domain.cleaning import clean_identity
from services.identity.domain.resolution import home_store
from services.identity.handlers import Deps
from services.identity.schemas import (
    ConflictRead,
    CustomerRead,
    CustomersPage,
    MergesPage,
    StoresPage,
    TimelinePage,
)
from services.identity.store import IdentityStore, RecordRow
from shared.access import masking
from shared.access.stores import StoreRegistry
from shared.access.visibility import Visibility
from shared.contract.events import Identity, InvalidEvent
from shared.contract.facts import newest
from shared.http.bounds import decode_cursor
from shared.http.errors import InvalidInput, NotFound


def active_record(store: IdentityStore, customer_id: str) -> RecordRow:
    """The active customer a (possibly merged) customer id belongs to now."""
    record = store.record(customer_id)
    if record is None:
        raise NotFound("customer_not_found", "no customer with that id")
    if record.root_id != record.id:
        record = store.record(record.root_id)
        assert record is not None
    return record


def customer_view(store: IdentityStore, customer_id: str, *, reveal: bool, zone: ZoneInfo) -> CustomerRead:
    """The single customer view; phones are masked unless ``reveal`` (admin)."""
    root = active_record(store, customer_id)
    group = store.group(root.id)
    records = {r: store.record(r) for r in group}
    stats = store.stats(group)
    return views.customer(
        root, records=records, identifiers=store.identifiers(group), values=newest(store.attributes(group)),
        # Issue 14: the home store a member file declared stands before the one purchases suggest (the owner rule).
        stats=stats, home_store=store.home_stores_of([root.id]).get(root.id) or home_store(stats.store_days),
        # Only the active customer's own parts: services republish the survivor's after a merge.
        parts=store.parts([root.id]), reveal=reveal, zone=zone,
        # Issue 14: phones staff replaced, the owning store and the assignments staff made.
        replaced=store.replaced_identifiers(group), owner=store.owners_of([root.id]).get(root.id),
        assignments=store.assignments_of([root.id]).get(root.id, {}),
    )


def view(customer_id: str, *, deps: Deps, reveal: bool) -> CustomerRead:
    """The single customer view in the deployment's timezone; a merged-away id answers with its customer."""
    return customer_view(deps.store, customer_id, reveal=reveal, zone=ZoneInfo(deps.settings.timezone))


def lookup(given: dict[str, str], *, deps: Deps, reveal: bool, seeing: Visibility | None = None) -> CustomerRead:
    """The customer owning one identifier (a phone in any notation, or any other identifier); one outside
    ``seeing`` answers exactly as an identifier nobody has, decided before the view is built, so the time
    taken tells nothing either."""
    try:
        idents = clean_identity(Identity(**given), deps.cleaning)
    except InvalidEvent as exc:
        raise InvalidInput(exc.code, "; ".join(exc.reasons)) from None
    found = deps.store.find(idents)
    not_found = NotFound("customer_not_found", "no customer has that identifier")
    if not found:
        raise not_found
    root = next(iter(found.values())).root_id
    if seeing is not None:
        seeing.check(root, lambda c: deps.store.owners_of([c])[c], not_found=not_found)
    return view(root, deps=deps, reveal=reveal)


def timeline(customer_id: str, *, deps: Deps, cursor: str | None, limit: int, reveal: bool = False) -> TimelinePage:
    """A customer's events, newest first, one page at a time; phones masked unless ``reveal``."""
    store = deps.store
    root = active_record(store, customer_id)
    group = store.group(root.id)
    rows = store.timeline(group, before=decode_cursor(cursor, (int, str, str)), limit=limit + 1)
    # Every name the customer was ever given: free text that mentions one shows it masked.
    names = () if reveal else masking.known_names(v.value for v in store.attributes(group) if v.field == "name")
    return views.timeline_page(root.id, rows, limit=limit, reveal=reveal, names=names)


def merges(customer_id: str, *, deps: Deps) -> MergesPage:
    """Every merge that made this customer, with what caused it."""
    store = deps.store
    root = active_record(store, customer_id)
    rows = store.merges(store.group(root.id) + [customer_id])
    return MergesPage(customer_id=root.id, items=[views.merge(m) for m in rows])


def conflicts(status: str | None, *, customer_id: str | None, offset: int, limit: int,
              deps: Deps) -> list[ConflictRead]:
    """Conflicts for review, by status (all when ``None``) and customer."""
    rows = deps.store.conflicts(status=status, customer_id=customer_id, offset=offset, limit=limit)
    return [views.conflict(c, names=_names(deps.store, c.customer_ids)) for c in rows]


def _names(store, customer_ids) -> tuple[str, ...]:
    # A conflict's note is staff's free text about its customers: their names are masked in it like in a timeline.
    records = sorted({r for c in customer_ids for r in [c, *store.group(c)]})
    return masking.known_names(v.value for v in store.attributes(records) if v.field == "name")


def summary(*, deps: Deps, seeing: Visibility | None = None) -> dict:
    """Counts ops watch: active customers, dead letters, open conflicts; a scoped caller's counts cover only
    the customers (and conflicts) its scope sees, and dead letters (company-wide) answer null."""
    store = deps.store
    stores = seeing.stores if seeing is not None else None
    if stores is None:
        return {
            "customers": store.customer_count(),
            "dead_letters": store.dead_letter_count(),
            "open_conflicts": len(store.conflicts(status="open", customer_id=None, offset=0, limit=10_000)),
        }
    # A dead letter is an event no customer could be found for: it belongs to no store, so no scope sees it.
    return {
        "customers": store.customer_count_owned(stores),
        "dead_letters": None,
        "open_conflicts": len(store.conflicts_owned(stores, status="open", customer_id=None, offset=0,
                                                    limit=10_000)),
    }


# Issue 12, access (H1).
def stores(*, deps: Deps, registry: StoreRegistry) -> StoresPage:
    """The stores registry, and the stores events named that it lacks (their events are processed all the same)."""
    known = registry.known()
    return StoresPage(items=[views.store_read(s) for s in registry.stores()],
                      unregistered=sorted(deps.store.store_ids_seen() - known))

# -- issue 12, scoped access (H2) -----------------------------------------------------------------


def visible_customer(customer_id: str, *, deps: Deps, seeing: Visibility) -> str:
    """The active customer ``customer_id`` is part of, if the caller may see it; else the unknown id's 404."""
    root = active_record(deps.store, customer_id).id
    return seeing.check(root, lambda c: deps.store.owners_of([c])[c])


def visible_conflicts(status: str | None, *, customer_id: str | None, offset: int, limit: int, deps: Deps,
                      seeing: Visibility) -> list[ConflictRead]:
    """:func:`conflicts` a caller may see: those whose every customer is in its scope (filtered in the store)."""
    stores = seeing.stores
    if stores is None:
        return conflicts(status, customer_id=customer_id, offset=offset, limit=limit, deps=deps)
    rows = deps.store.conflicts_owned(stores, status=status, customer_id=customer_id, offset=offset, limit=limit)
    return [views.conflict(c, names=_names(deps.store, c.customer_ids)) for c in rows]


def check_conflict(conflict_id: str, *, deps: Deps, seeing: Visibility) -> None:
    """A conflict outside the caller's scope answers as an unknown one."""
    if seeing.company_wide:
        return
    customers = deps.store.conflict_customers(conflict_id) or ()
    owners = deps.store.owners_of(list(customers))
    if not customers or len(seeing.visible(owners)) != len(owners):
        raise NotFound("conflict_not_found", "no such conflict")


# -- issue 14, staff corrections ------------------------------------------------------------------


def managed_customers(manager: str, *, deps: Deps, seeing: Visibility, offset: int, limit: int,
                      reveal: bool = False) -> CustomersPage:
    """The customers assigned to an account manager that the caller may see (filtered in the store query)."""
    rows = deps.store.assigned_to("manager", manager, stores=seeing.stores, offset=offset, limit=limit)
    return CustomersPage(items=[view(r.customer_id, deps=deps, reveal=reveal) for r in rows], offset=offset,
                         limit=limit)
