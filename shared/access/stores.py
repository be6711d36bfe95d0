"""The stores registry: master data of stores and regions from ``CRM_STORES_FILE`` (CSV or JSON), re-read when
the file changes. Events that name a store the registry lacks are still processed; they are listed apart."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import time as Time
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.access.reloading import Reloading

FIELDS = ("store_id", "name", "region", "timezone", "parent", "meal_periods")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PERIOD = re.compile(r"^([a-z][a-z0-9_]{0,31})=(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


@dataclass(frozen=True)
class MealPeriod:
    """A named part of a store's day; ``end`` before ``start`` runs past midnight."""

    name: str
    start: Time
    end: Time

    def __str__(self) -> str:
        return f"{self.name}={self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True)
class Store:
    """One store of the registry."""

    store_id: str
    name: str
    region: str
    timezone: str
    parent: str | None = None
    meal_periods: tuple[MealPeriod, ...] = ()


class StoresFileError(ValueError):
    """A stores file that cannot be used, with the row and field at fault."""


def parse_meal_periods(text: str, *, where: str) -> tuple[MealPeriod, ...]:
    """``lunch=10:30-15:00;dinner=16:30-22:30`` as meal periods."""
    periods: list[MealPeriod] = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        m = _PERIOD.match(part)
        try:
            if m is None:
                raise ValueError
            start = Time(int(m[2]), int(m[3]))
            end = Time(int(m[4]), int(m[5]))
        except ValueError:
            raise StoresFileError(f"{where}: field meal_periods: entries look like lunch=10:30-15:00, "
                                  "separated by ;") from None
        if start == end or m[1] in {p.name for p in periods}:
            raise StoresFileError(f"{where}: field meal_periods: {m[1]} is empty or listed twice")
        periods.append(MealPeriod(m[1], start, end))
    return tuple(periods)


def parse_stores(text: str, *, kind: str, source: str = "CRM_STORES_FILE") -> dict[str, Store]:
    """The stores in a file's text (``kind``: ``csv`` or ``json``); errors name the row and the field."""
    out: dict[str, Store] = {}
    parents: dict[str, tuple[str, str]] = {}
    for number, row in _rows(text, kind, source):
        where = f"{source} row {number}"
        values = {f: _text(row.get(f), where=where, field=f) for f in FIELDS}
        sid = values["store_id"]
        if not _ID.match(sid):
            raise StoresFileError(f"{where}: field store_id: 1-64 letters, digits or . _ - (required)")
        if sid in out:
            raise StoresFileError(f"{where}: field store_id: {sid} is listed twice")
        for field in ("name", "region", "timezone"):
            if not values[field]:
                raise StoresFileError(f"{where}: field {field}: required")
        try:
            ZoneInfo(values["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise StoresFileError(f"{where}: field timezone: not a known timezone (e.g. Asia/Shanghai)") from None
        if values["parent"]:
            parents[sid] = (values["parent"], where)
        out[sid] = Store(sid, values["name"], values["region"], values["timezone"], values["parent"] or None,
                         parse_meal_periods(values["meal_periods"], where=where))
    for sid, (parent, where) in parents.items():
        if parent == sid or parent not in out:
            raise StoresFileError(f"{where}: field parent: names no other store of the file")
    return out


def _text(value: object, *, where: str, field: str) -> str:
    if value is None:
        return ""
    if field == "meal_periods" and isinstance(value, dict):  # JSON may give {"lunch": "10:30-15:00"}
        return ";".join(f"{k}={v}" for k, v in value.items())
    if not isinstance(value, str):
        raise StoresFileError(f"{where}: field {field}: a string")
    return value.strip()


def _rows(text: str, kind: str, source: str) -> list[tuple[int, dict]]:
    if kind == "json":
        try:
            data = json.loads(text or "[]")
        except json.JSONDecodeError as exc:
            raise StoresFileError(f"{source}: not valid JSON (line {exc.lineno})") from None
        items = data.get("stores") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise StoresFileError(f"{source}: JSON is a list of stores (or {{\"stores\": [...]}})")
        for number, item in enumerate(items, start=1):
            if not isinstance(item, dict):
                raise StoresFileError(f"{source} row {number}: a store is an object")
        return list(enumerate(items, start=1))
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))  # spreadsheets save UTF-8 with a BOM
    missing = [f for f in ("store_id", "name", "region", "timezone") if f not in (reader.fieldnames or ())]
    if missing:
        raise StoresFileError(f"{source}: header lacks {', '.join(missing)}")
    # Row numbers count the header as row 1, as a spreadsheet shows them.
    return [(number, row) for number, row in enumerate(reader, start=2)]


def file_kind(path: Path) -> str:
    """``json`` for a ``.json`` file, else ``csv``."""
    return "json" if path.suffix.lower() == ".json" else "csv"


class StoreRegistry:
    """The stores of ``CRM_STORES_FILE``; each use checks the file (one stat, at most every ``recheck_s``) and
    re-reads it when it changed. A broken edit is logged and the last good registry stays."""

    def __init__(self, path: str | Path | None, *, recheck_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        file = Path(path) if path else None
        self._file = None if file is None else Reloading(
            file, lambda text: _load(file, text), initial={}, what="stores file", describe=_describe,
            recheck_s=recheck_s, clock=clock)
        if self._file is not None:
            try:
                self._file.reload()
            except (OSError, UnicodeDecodeError, StoresFileError) as exc:
                raise StoresFileError(_describe(exc)) from None

    @property
    def error(self) -> str | None:
        """Why the file's last edit was refused (the previous registry stays in force), or None."""
        return None if self._file is None else self._file.error

    def _current(self) -> dict[str, Store]:
        return {} if self._file is None else self._file.current()

    def stores(self) -> list[Store]:
        """Every registered store, by id."""
        return sorted(self._current().values(), key=lambda s: s.store_id)

    def get(self, store_id: str) -> Store | None:
        """One registered store, or None."""
        return self._current().get(store_id)

    def region_of(self, store_id: str) -> str | None:
        """The region of a registered store; None for a store the registry lacks."""
        store = self._current().get(store_id)
        return store.region if store else None

    def known(self) -> frozenset[str]:
        """The ids of every registered store."""
        return frozenset(self._current())


def _load(path: Path, text: str | None) -> dict[str, Store]:
    if text is None:
        raise StoresFileError("CRM_STORES_FILE: no such file")
    return parse_stores(text, kind=file_kind(path))


def _describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, StoresFileError) else f"CRM_STORES_FILE: {type(exc).__name__}"


@lru_cache(maxsize=8)
def registry_for(path: str) -> StoreRegistry:
    """The process-wide registry of one stores file (every service of a process shares it)."""
    return StoreRegistry(path or None)
