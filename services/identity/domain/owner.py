"""The one definition of a customer's owning store, which decides who may see the customer (issue 12).

Identity computes it, as the owner of the single customer view, and publishes every change
(``CustomerOwnerChanged``) for loyalty, alerts and campaigns to keep.
"""

from __future__ import annotations

from services.identity.domain.resolution import home_store


def owning_store(store_days: list[tuple[str, int, str]], *, manager_store: str | None = None) -> str | None:
    """The store of an assigned account manager if any, else the home store (most purchase days)."""
    return manager_store or home_store(store_days)


def changed_owners(computed: dict[str, str | None], held: dict[str, str | None]) -> dict[str, str | None]:
    """The customers whose owning store differs from the one held (a customer never held counts as None)."""
    return {c: s for c, s in computed.items() if held.get(c) != s}
