"""Retention (issue 12): each service's own timer purges what ``CRM_RETENTION_*`` says is too old, on the
service's clock, exactly at the boundary: a row ``days`` old stays, one a microsecond older goes."""

from __future__ import annotations

import importlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.identity.store import EventRow
from shared.access.audit import AuditEntry, AuditQuery
from shared.clock import iso_utc
from shared.contract.facts import epoch_ms
from shared.settings import Settings
from shared.storage.base import DeadLetter
from tests.integration.faust_stub import RecordingFaust

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)


class Clock:
    """A clock the test sets."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _settings(tmp_path, store: str, **retention: int) -> Settings:
    url = f"sqlite:///{tmp_path}/crm.db" if store == "sqlite" else f"mongomock://localhost/r{uuid.uuid4().hex[:8]}"
    return Settings(_env_file=None, data_dir=str(tmp_path), store_url=url, pseudonym_secret="retention-secret-0123456",
                    **{f"retention_{k}_days": v for k, v in retention.items()})


def _service(name: str, settings: Settings, clock: Clock):
    app = importlib.import_module(f"services.{name}.app")
    return app.create_app(settings, publish=lambda messages: None, clock=clock)


def _letter(n: int, at: datetime) -> DeadLetter:
    return DeadLetter(f"fp-{n}", "crm.channel.pos", 0, n, "invalid_event", "bad", b'{"phone": "13512340001"}', [],
                      iso_utc(at))


def test_the_defaults_are_documented_ones():
    s = Settings(_env_file=None)
    assert (s.retention_timeline_days, s.retention_deadletter_days, s.retention_audit_days) == (365, 30, 1095)


@pytest.mark.parametrize("store", ["sqlite", "mongomock"])
@pytest.mark.parametrize("name", ["identity", "loyalty", "alerts", "campaigns"])
def test_every_service_purges_its_dead_letters_at_the_boundary_exactly(tmp_path, store, name):
    clock = Clock(NOW)
    service = _service(name, _settings(tmp_path, store, deadletter=30), clock)
    boundary = NOW - timedelta(days=30)
    for n, at in enumerate([boundary - TICK, boundary, boundary + TICK]):
        service.store.dead_letter_add(_letter(n, at))
    timers = importlib.import_module(f"services.{name}.handlers.timers")
    assert timers.purge_expired(deps=service.deps)["deadletters"] == 1
    assert [d.fingerprint for d in service.store.dead_letters()] == ["fp-1", "fp-2"]
    clock.now = NOW + TICK  # a microsecond later the letter kept at the boundary is too old as well
    assert timers.purge_expired(deps=service.deps)["deadletters"] == 1
    assert [d.fingerprint for d in service.store.dead_letters()] == ["fp-2"]


def _audit(n: int, at: datetime) -> AuditEntry:
    return AuditEntry(f"au_{n}", iso_utc(at), "identity", "ops-1", "admin", "company", "reveal.customer", "c_1")


def _event(n: int, at: datetime) -> EventRow:
    payload = json.dumps({"data": {"identity": {"phone": "+8613512340001"}, "text": "call me"}})
    return EventRow("pos/SH-001", f"e{n}", "c_1", "crm.complaint", "pos", iso_utc(at), epoch_ms(at), payload,
                    iso_utc(at))


@pytest.mark.parametrize("store", ["sqlite", "mongomock"])
def test_identity_purges_timeline_payloads_and_audit_entries_at_their_boundaries(tmp_path, store):
    clock = Clock(NOW)
    service = _service("identity", _settings(tmp_path, store, timeline=365, audit=1095), clock)
    from services.identity.handlers import timers

    kept = service.store
    old_events, old_audit = NOW - timedelta(days=365), NOW - timedelta(days=1095)
    with kept.transaction():
        kept.create_record("c_1", phone=None, at=iso_utc(NOW))
        # Event times are kept in milliseconds: the boundary is a millisecond wide.
        kept.add_events([_event(1, old_events - timedelta(milliseconds=1)), _event(2, old_events)])
    kept.audit_add([_audit(1, old_audit - TICK), _audit(2, old_audit)])
    assert timers.purge_expired(deps=service.deps) == {"timeline": 1, "audit": 1, "deadletters": 0}
    payloads = {r.id: r.payload for r in kept.timeline(["c_1"], before=None, limit=10)}
    assert payloads["e1"] == "{}" and json.loads(payloads["e2"])["data"]["text"] == "call me"
    assert [e.audit_id for e in kept.audit_find(AuditQuery(), after=None, limit=10)] == ["au_2"]
    clock.now = NOW + timedelta(milliseconds=1)
    assert timers.purge_expired(deps=service.deps) == {"timeline": 1, "audit": 1, "deadletters": 0}


def test_zero_days_keeps_a_kind_forever(tmp_path):
    clock = Clock(NOW)
    service = _service("identity", _settings(tmp_path, "sqlite", timeline=0, audit=0, deadletter=0), clock)
    from services.identity.handlers import timers

    service.store.dead_letter_add(_letter(1, NOW - timedelta(days=9000)))
    service.store.audit_add([_audit(1, NOW - timedelta(days=9000))])
    assert timers.purge_expired(deps=service.deps) == {"timeline": 0, "audit": 0, "deadletters": 0}
    assert service.store.dead_letter_count() == 1


@pytest.mark.parametrize("name", ["identity", "loyalty", "alerts", "campaigns"])
def test_each_service_registers_its_retention_timer_and_the_timer_purges(tmp_path, name):
    import asyncio

    clock = Clock(NOW)
    settings = _settings(tmp_path, "sqlite", deadletter=30)
    service = _service(name, settings.model_copy(update={"retention_interval_s": 600.0}), clock)
    app = RecordingFaust()
    importlib.import_module(f"services.{name}.agents").register(app, service)
    interval, tick = app.timers[f"{name}.retention"]
    assert interval == 600.0
    service.store.dead_letter_add(_letter(1, NOW - timedelta(days=30) - TICK))
    asyncio.run(tick())
    assert service.store.dead_letter_count() == 0
