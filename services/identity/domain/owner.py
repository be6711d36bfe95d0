"""The one definition of a customer's owning store, which decides who may see the customer (issue 12).

It is the rule alerts route an alert by (home store, else the latest complaint's store), so the store an
alert goes to can see its customer. Identity computes it, as the owner of the single customer view, and
publishes every change (``CustomerOwnerChanged``) for loyalty, alerts and campaigns to keep.
"""

from __future__ import annotations

from services.identity.domain.resolution import home_store
from shared.contract.events import ChannelEvent, ComplaintEvent


def owning_store(store_days: list[tuple[str, int, str]], *, complaint_store: str | None = None,
                 manager_store: str | None = None, assigned_store: str | None = None,
                 declared_store: str | None = None) -> str | None:
    """The store staff assigned the customer to (issue 14) if any, else the store of an assigned account manager,
    else the home store a member file declared (issue 14: the counter the brand assigned the member to keeps them
    through a purchase elsewhere), else the home store (most purchase days), else the store of the latest
    complaint: a customer who only complained belongs to the store that alerts route their complaint to, so
    that store's keys see both the customer and the alert."""
    return assigned_store or manager_store or declared_store or home_store(store_days) or complaint_store


def changed_owners(computed: dict[str, str | None], held: dict[str, str | None]) -> dict[str, str | None]:
    """The customers whose owning store differs from the one held (a customer never held counts as None)."""
    return {c: s for c, s in computed.items() if held.get(c) != s}


def complaint_store(event: ChannelEvent) -> str | None:
    """The store a complaint names, if the event is a complaint that names one."""
    return event.data.store_id if isinstance(event, ComplaintEvent) else None
