"""Readings kept while nothing they read changes (issues 15 and 16): alerts' customer-value report, campaigns'
results.

A reading over every customer takes a second or more at 100,000 customers, and the console asks for the same
one again and again. The store counts every change to what a reading reads (a generation, bumped in the same
transaction as each write it depends on: ``shared.storage.changes``), so a kept result is used only while the
store's generation is the one it was computed at: a kept result is never stale. The generation is read before
the data, so a result computed from data newer than its generation is only ever superseded. The store also logs
which record and customer ids each generation changed (the last few hundred generations): a kept result is
then brought forward (``latest``) by computing again only those customers.

Kept in this process's memory per store (each worker keeps its own), bounded by the rows it holds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sized
from typing import Any
from weakref import WeakKeyDictionary

ROWS_LIMIT = 400_000  # customers' rows kept in all (a report of 100,000 customers holds about 40 MB)


class Kept:
    """Results per key, each valid for one generation; least recently used go first past ``rows_limit``."""

    def __init__(self, *, rows_limit: int = ROWS_LIMIT) -> None:
        self.rows_limit = rows_limit
        self._held: OrderedDict[Hashable, tuple[int, Any, int]] = OrderedDict()  # key -> (generation, value, rows)
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Lock] = {}
        # Drops (``drop``) made while a computation was under way: what it computes from before a drop and names
        # what was dropped is not kept. Held only while computations are under way (they may name the erased).
        self._dropped: list[tuple[int, Callable[[Any], bool]]] = []
        self._under_way = 0  # computations running

    def peek(self, key: Hashable, generation: int) -> Any:
        """The value kept for ``key`` at ``generation``, or None (nothing is computed)."""
        with self._lock:
            held = self._held.get(key)
            return held[1] if held is not None and held[0] == generation else None

    def latest(self, key: Hashable) -> tuple[int, Any] | None:
        """The value kept for ``key`` at whatever generation, with that generation, or None."""
        with self._lock:
            held = self._held.get(key)
            return None if held is None else (held[0], held[1])

    def items(self) -> list[tuple[Hashable, Any]]:
        """Every key and the value kept for it (whatever its generation)."""
        with self._lock:
            return [(key, held[1]) for key, held in self._held.items()]

    def get(self, key: Hashable, generation: int, compute: Callable[[], Any]) -> Any:
        """The value kept for ``key`` at ``generation`` (or a newer one), or ``compute()`` kept for it; a second
        request for a key being computed waits for that computation instead of starting its own."""
        while True:
            with self._lock:
                busy = self._computing.setdefault(key, threading.Lock())
            with busy:
                with self._lock:
                    if self._computing.get(key) is not busy:
                        # The lock waited for was let go by a computation that finished: a request arriving
                        # since may hold the key's new lock, and two must never compute one key at once.
                        continue
                    held = self._held.get(key)
                    # One kept at a newer generation was computed from data at least as new as this caller's:
                    # computing an older one over it would only make the next reader bring it forward again.
                    if held is not None and held[0] >= generation:
                        self._held.move_to_end(key)
                        return held[1]
                with self._lock:
                    self._under_way += 1
                try:
                    value = compute()
                except BaseException:
                    self._done_computing()
                    raise
                with self._lock:
                    self._under_way -= 1
                    held = self._held.get(key)
                    # Computed before a drop of what it names (an erasure meanwhile): answered, never kept.
                    dropped = any(generation < at and names(value) for at, names in self._dropped)
                    if not dropped and (held is None or held[0] <= generation):  # never older over newer
                        self._held[key] = (generation, value, len(value) if isinstance(value, Sized) else 1)
                    if key in self._held:
                        self._held.move_to_end(key)
                    while len(self._held) > 1 and sum(r for _, _, r in self._held.values()) > self.rows_limit:
                        self._held.popitem(last=False)
                    del self._computing[key]
                    if not self._under_way:
                        self._dropped = []
                return value

    def _done_computing(self) -> None:
        with self._lock:
            self._under_way -= 1
            if not self._under_way:
                self._dropped = []

    def drop(self, names: Callable[[Any], bool], *, generation: int) -> int:
        """Forget every value ``names`` is true of, and keep none computed before ``generation`` that it is true
        of (one being computed now); how many were dropped. For an erasure: nothing kept names the erased."""
        with self._lock:
            gone = [key for key, held in self._held.items() if names(held[1])]
            for key in gone:
                del self._held[key]
            if self._under_way:
                self._dropped.append((generation, names))
            return len(gone)


_KEPT: WeakKeyDictionary = WeakKeyDictionary()
_KEPT_LOCK = threading.Lock()


def kept_for(store: object) -> Kept:
    """The results kept for one store object (forgotten with it)."""
    with _KEPT_LOCK:
        kept = _KEPT.get(store)
        if kept is None:
            kept = _KEPT[store] = Kept()
        return kept
