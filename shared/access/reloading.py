"""A value read from a file and re-read when the file changes, the last good one kept when an edit is broken
(or, for the key file and the staff file, only what the broken edit still lists): how the key file, the staff
file and the stores registry follow their files without a restart."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from shared.access.filestamp import stamp

log = logging.getLogger(__name__)

T = TypeVar("T")


class Reloading(Generic[T]):
    """What ``load`` makes of a file's text (``None`` when there is no file), made again when the file's inode,
    size or mtime changes (one stat per use, at most every ``recheck_s``).

    A broken edit must not take the service down or lock everyone out: it is logged (as ``describe`` words it:
    never a secret or personal data), ``error`` says why, and the last good value stays in force. With
    ``salvage`` (credentials) it fails closed instead: ``salvage(text, last_good)`` makes the value in force of
    what the broken text still lists (``None`` when it could not be read), so an edit that removes a key or an
    account takes effect even when another line of the same edit is broken."""

    def __init__(self, path: Path, load: Callable[[str | None], T], *, initial: T, what: str,
                 describe: Callable[[Exception], str] = str, recheck_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic,
                 salvage: Callable[[str | None, T], T] | None = None) -> None:
        self._path = path
        self._load = load
        self._salvage = salvage
        self._what = what
        self._describe = describe
        self._recheck_s = recheck_s
        self._clock = clock
        self._checked = float("-inf")
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self.value = initial
        self.error: str | None = None

    def current(self) -> T:
        """The value, read again first when the file changed since the last look."""
        now = self._clock()
        if now - self._checked >= self._recheck_s:
            self._checked = now
            if stamp(self._path) != self._stamp:
                with self._lock:
                    if stamp(self._path) != self._stamp:
                        self.reload(strict=False)
        return self.value

    def reload(self, *, strict: bool = True) -> None:
        """Read the file now; ``strict`` (at start-up) raises what reading or ``load`` raised, else it is logged
        and the last good value stays."""
        seen = stamp(self._path)
        text: str | None = None
        try:
            text = self._path.read_text(encoding="utf-8") if seen is not None else None
            value = self._load(text)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            if strict:
                raise
            self.error = self._describe(exc)
            self._stamp = seen
            if self._salvage is None:
                log.error("%s not reloaded, the last good version stays in force: %s", self._what, self.error)
                return
            self.value = self._salvage(text, self.value)
            log.error("%s is broken, only what it still lists of the last good version stays in force: %s",
                      self._what, self.error)
            return
        self.value, self._stamp, self.error = value, seen, None
        log.info("%s loaded", self._what)
