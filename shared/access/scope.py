"""A principal's scope: the whole company, one region, or one store; and which stores that covers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

ScopeKind = Literal["company", "region", "store"]


@dataclass(frozen=True)
class Scope:
    """What a principal may see: ``company`` (everything), ``region`` (its stores) or one ``store``."""

    kind: ScopeKind = "company"
    value: str | None = None

    @property
    def company_wide(self) -> bool:
        """Whether this scope sees every customer, including those no store owns."""
        return self.kind == "company"

    def stores(self, region_of: Callable[[str], str | None], known: frozenset[str]) -> frozenset[str] | None:
        """The store ids this scope covers among ``known`` (and its own store), or None for all of them."""
        if self.kind == "company":
            return None
        if self.kind == "store":
            return frozenset({self.value or ""})
        return frozenset(s for s in known if region_of(s) == self.value)

    def covers(self, store_id: str | None, region_of: Callable[[str], str | None]) -> bool:
        """Whether a customer owned by ``store_id`` (None: owned by no store) is inside this scope."""
        if self.kind == "company":
            return True
        if store_id is None:
            return False
        if self.kind == "store":
            return store_id == self.value
        return region_of(store_id) == self.value

    def __str__(self) -> str:
        return "company" if self.kind == "company" else f"{self.kind}={self.value}"


COMPANY = Scope()
