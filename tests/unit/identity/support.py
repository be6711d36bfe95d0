"""Building blocks for identity handler tests: deps over a fresh SQLite file, events, consumed messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.identity.domain.cleaning import Cleaning
from services.identity.handlers import Deps
from services.identity.store.sqlite import SqliteIdentityStore
from shared.privacy import Pseudonymizer
from shared.settings import Settings
from shared.streaming.batch import Incoming

PSEUDO = Pseudonymizer(b"unit-test-key")


class TickingClock:
    """A clock tests control: starts at a fixed moment and moves one millisecond per reading."""

    def __init__(self, start: datetime = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


def settings(**overrides) -> Settings:
    base = dict(_env_file=None, topic_prefix="", timezone="Asia/Shanghai", store_timezones="", blocked_phones="")
    return Settings(**{**base, **overrides})


def make_deps(path: Path, *, store: SqliteIdentityStore | None = None, **overrides) -> Deps:
    """Handler deps over a fresh SQLite store (or the one given), a test key and a ticking clock."""
    s = settings(**overrides)
    return Deps(store=store or SqliteIdentityStore(path), pseudo=PSEUDO,
                cleaning=Cleaning(region=s.default_region, blocked_phones=s.blocked_phone_set(),
                                  blocked_values=s.blocked_identifier_set()),
                settings=s, clock=TickingClock())


def customer_of_phone(e164: str) -> str:
    return "c_" + PSEUDO("phone", e164)


def event(eid: str, identity: dict, *, kind: str = "crm.page_view", source: str = "pos/SH-001",
          time: str = "2026-05-01T10:00:00+08:00", **data) -> dict:
    if kind == "crm.page_view" and "url" not in data:
        data["url"] = "https://shop.example/p/1"
    return {"specversion": "1.0", "id": eid, "source": source, "type": kind, "time": time,
            "data": {"identity": identity, **data}}


def purchase(eid: str, identity: dict, amount: str, *, store_id: str = "SH-001", source: str | None = None,
             time: str = "2026-05-01T10:00:00+08:00") -> dict:
    return event(eid, identity, kind="crm.purchase", source=source or f"pos/{store_id}", time=time,
                 order_id=f"o-{eid}", amount=amount, currency="CNY", store_id=store_id)


def incoming(items: list, *, topic: str = "crm.channel.pos", partition: int = 0, first_offset: int = 0,
             headers: list | None = None) -> list[Incoming]:
    """Consumed messages: dicts as the JSON a channel publishes, str/bytes as they are."""
    out = []
    for n, item in enumerate(items):
        text = item if isinstance(item, str | bytes) else json.dumps(item)
        value = text.encode() if isinstance(text, str) else text
        out.append(Incoming(value, topic, partition, first_offset + n, list(headers or []), f"k{n}".encode()))
    return out
