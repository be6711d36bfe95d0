"""Which customers a caller may see: the owning stores its scope covers, and one check for every customer route.

A customer's owning store is computed by identity (``services/identity/domain/owner.py``) and published
as ``CustomerOwnerChanged``; every service keeps it per customer (``shared/storage/owners.py``). A
customer outside the caller's scope answers exactly as an unknown id does (OWASP API1: ids cannot be
probed), and every list is filtered in its store query by :attr:`Visibility.stores`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from shared.access.scope import COMPANY, Scope
from shared.http.api import require
from shared.http.errors import Forbidden, NotFound

RegionOf = Callable[[str], str | None]


def _no_region(_: str) -> str | None:
    # Without a stores registry nothing has a region: store scopes work, region scopes see nobody.
    return None


@dataclass(frozen=True)
class Visibility:
    """What one caller may see: ``stores`` None means every customer (a company-wide caller)."""

    scope: Scope = COMPANY
    region_of: RegionOf = _no_region
    known: frozenset[str] = field(default_factory=frozenset)

    @property
    def stores(self) -> frozenset[str] | None:
        """The owning stores visible (None: all, customers owned by no store included)."""
        return self.scope.stores(self.region_of, self.known)

    @property
    def company_wide(self) -> bool:
        """Whether every customer is visible."""
        return self.scope.company_wide

    def sees(self, owner: str | None) -> bool:
        """Whether a customer owned by ``owner`` (None: no store) is visible."""
        return self.scope.covers(owner, self.region_of)

    def check(self, customer_id: str, owner_of: Callable[[str], str | None], *,
              not_found: NotFound | None = None) -> str:
        """``customer_id`` if visible; otherwise the very NotFound an unknown id answers (``not_found``)."""
        if self.company_wide or self.sees(owner_of(customer_id)):
            return customer_id
        raise not_found or customer_not_found()

    def visible(self, owners: dict[str, str | None]) -> set[str]:
        """The customers of ``owners`` (customer -> owning store) that are visible."""
        return {c for c, s in owners.items() if self.company_wide or self.sees(s)}

    def company_only(self, what: str) -> None:
        """Refuse (403) an action that stays company-wide, such as defining or launching a campaign."""
        if not self.company_wide:
            raise Forbidden("forbidden_scope", f"{what} needs a company-wide key")


def customer_not_found() -> NotFound:
    """The answer for an unknown customer id, the same in every service."""
    return NotFound("customer_not_found", "no customer with that id")


def visibility_dep(*, region_of: RegionOf | None = None,
                   known: Callable[[], Iterable[str]] | None = None) -> Callable[..., Visibility]:
    """A dependency: the caller (authenticated by the gate; the route's own role dependency checks its
    role) turned into what it may see. Regions come from ``region_of``/``known`` when given, else from a
    stores registry the app holds as ``app.state.stores`` (``region_of(store_id)``, ``known()``), else
    nothing has a region."""
    caller_of = require("reader")

    def dep(request: Request) -> Visibility:
        registry = getattr(request.app.state, "stores", None)
        regions = region_of or (registry.region_of if registry is not None else _no_region)
        stores = known or (registry.known if registry is not None else frozenset)
        return Visibility(caller_of(request).scope, regions, frozenset(stores()))

    return dep


Seeing = Annotated[Visibility, Depends(visibility_dep())]
"""A route parameter ``seeing: Seeing``: what the caller may see."""
