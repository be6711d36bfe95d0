"""Erasure (PIPL) in this process's memory: what campaigns keeps to answer fast forgets an erased customer.

The kept results of a campaign or store scope hold each member's launch row (tier, age band, home store) and
customer id, and the preview's index holds every customer's id; a kept thing nobody reads again would keep them
until evicted. When this process applies an erasure (its consume handler, the same process as the API under
``crm up``), the ids it erased are noted, and once that batch has committed every kept report naming one of them
is dropped whole (measured again at its next read) and the index forgets their rows.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import Any
from weakref import WeakKeyDictionary

from services.campaigns.handlers import preview
from services.campaigns.handlers.kept_results import Held
from shared.kept import kept_for

_NOTED: WeakKeyDictionary = WeakKeyDictionary()  # store -> ids erased in a batch not yet committed
_LOCK = threading.Lock()


def note(store: object, ids: Collection[str]) -> None:
    """Ids an erasure in the current transaction removes (forgotten by ``after_commit``)."""
    with _LOCK:
        _NOTED.setdefault(store, set()).update(ids)


def names_any(value: Any, ids: set[str]) -> bool:
    """Whether a kept value names one of these ids (a member as launched, a customer measured or in the
    period's sales, a follow-up touch's member)."""
    if not isinstance(value, Held):
        return False
    return not (ids.isdisjoint(value.launched) and ids.isdisjoint(value.measured) and ids.isdisjoint(value.followed)
                and (value.period is None or ids.isdisjoint(value.period)))


def after_commit(store) -> set[str]:
    """Forget what the committed erasures named, in every kept structure of this store; the ids forgotten.
    After the commit: a reader since reads the erased store, and one that read before keeps nothing it names."""
    with _LOCK:
        ids = _NOTED.pop(store, set())
    if ids:
        kept_for(store).drop(lambda value: names_any(value, ids), generation=store.change_generation())
        preview.forget(store, ids)
    return ids
