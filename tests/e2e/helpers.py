"""Helpers for end-to-end tests: feeding events, sentinels that mark a drained topic, truth checks."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

import httpx
from kafka import KafkaProducer

from crm.scenario import Scenario, first_at
from services.identity.store.sqlite import SqliteIdentityStore
from shared.contract import topics
from shared.storage.base import sqlite_path

SENTINEL_PHONE = "+86 199 0000 1234"
# A run of digit groups joined by single separators, as a number is written in any notation
# ("138 0013 8000", "138-0013-8000", "138.0013.8000", "+86 138…", "0086138…"), never part of a longer number.
_DIGIT_RUN = re.compile(r"(?<!\d)\d+(?:[ .\-]\d+)*(?!\d)")
_GROUP = re.compile(r"\d+")
_DATE = re.compile(r"(?<!\d)\d{4}-\d{2}-\d{2}(?!\d)")
_PREFIXES = ("0086", "86")


class PersonalData:
    """Finds a scenario's personal data in text: a phone as a whole number in any notation (a phone's
    digits inside a longer number, such as a span's nanosecond timestamp, are not a phone), a birthday
    (``YYYY-MM-DD``) not inside a longer number either, or any of ``texts`` (names) as written.

    Candidates are found by shape and looked up in sets: one pattern with a branch per person and a
    digit boundary on each would try every branch at every position of megabytes of spans."""

    def __init__(self, phones: Iterable[str], *, dates: Iterable[str] = (), texts: Iterable[str] = ()) -> None:
        self.phones = frozenset(phones)
        self.dates = frozenset(dates)
        self._longest = max((len(p) for p in self.phones), default=0) + max(len(x) for x in _PREFIXES)
        forms = sorted(set(texts), key=len, reverse=True)
        self._texts = re.compile("|".join(re.escape(f) for f in forms)) if forms else None

    def search(self, text: str) -> re.Match | None:
        """The first piece of personal data in ``text`` (as a match of exactly that piece), or ``None``."""
        date = next((m for m in _DATE.finditer(text) if m.group(0) in self.dates), None)
        found = [m for m in (self._phone(text), date, self._texts.search(text) if self._texts else None) if m]
        return min(found, key=lambda m: m.start()) if found else None

    def _phone(self, text: str) -> re.Match | None:
        for run in _DIGIT_RUN.finditer(text):
            # A phone has eleven digits, so a shorter run holds none (most numbers in spans are short).
            if run.end() - run.start() >= 11 and (found := self._phone_in(text, run)) is not None:
                return found
        return None

    def _phone_in(self, text: str, run: re.Match) -> re.Match | None:
        groups = list(_GROUP.finditer(run.group(0)))
        # A phone starts and ends at a group's edge: each span of whole groups, as long as a phone can be.
        for i, first in enumerate(groups):
            digits = ""
            for last in groups[i:]:
                digits += last.group(0)
                if len(digits) > self._longest:
                    break
                if self._is_phone(digits):
                    start, end = run.start() + first.start(), run.start() + last.end()
                    return re.compile(re.escape(text[start:end])).search(text, start)
        return None

    def _is_phone(self, digits: str) -> bool:
        return digits in self.phones or any(
            digits.startswith(p) and digits[len(p):] in self.phones for p in _PREFIXES)


def personal_data(scenario: Scenario) -> PersonalData:
    """The scan for a scenario's phones (any notation), birthdays and names."""
    return PersonalData((p.digits for p in scenario.people), dates=(p.birthday.isoformat() for p in scenario.people),
                        texts=(f"Customer {p.n}\"" for p in scenario.people))


def lines_of(scenario: Scenario) -> list[str]:
    return [e if isinstance(e, str) else json.dumps(e, ensure_ascii=False) for e in scenario.events]


def identity_store(data_dir) -> SqliteIdentityStore:
    """The identity service's own SQLite file, opened for reading."""
    return SqliteIdentityStore(sqlite_path(f"sqlite:///{data_dir}/crm.db", "identity"))


def send_sentinels(bootstrap: str, partitions: int = 4) -> set[tuple[str, str]]:
    """One page view on every partition of every channel topic; when all are processed, everything
    published before them has been processed too (a partition is consumed in order)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    keys = set()
    run = uuid.uuid4().hex[:8]
    for channel, topic in topics.CHANNEL_TOPICS.items():
        for p in range(partitions):
            eid = f"sentinel-{run}-{channel}-{p}"
            source = {"pos": "pos/SENTINEL", "wechat": "wechat/sentinel", "web": "web/sentinel"}[channel]
            event = {"specversion": "1.0", "id": eid, "source": source, "type": "crm.page_view",
                     "time": datetime.now(UTC).isoformat(),
                     "data": {"identity": {"phone": SENTINEL_PHONE}, "url": "https://example.invalid/"}}
            producer.send(topic, json.dumps(event).encode(), partition=p)
            keys.add((source, eid))
    producer.flush()
    producer.close()
    return keys


def all_seen(store: SqliteIdentityStore, keys: set[tuple[str, str]]) -> bool:
    return all(store.event_seen(s, i) for s, i in keys)


def expected_stats(scenario: Scenario) -> dict[str, dict]:
    out = {}
    for phone, truth in scenario.truth().items():
        out[phone] = {**truth, "first_purchase_at": first_at(truth["first_purchase_at"]),
                      "last_purchase_at": first_at(truth["last_purchase_at"])}
    return out


def mismatches(client: httpx.Client, scenario: Scenario) -> list[tuple[str, dict, dict]]:
    """Customers whose statistics through the API differ from the scenario's truth."""
    bad = []
    for phone, want in expected_stats(scenario).items():
        r = client.get("/v1/customers/lookup", params={"phone": phone})
        got = r.json().get("stats") if r.status_code == 200 else {"status": r.status_code}
        if got != want:
            bad.append((phone[-4:], got, want))
    return bad


def unique_valid_keys(scenario: Scenario) -> set[tuple[str, str]]:
    return {(e["source"], e["id"]) for e in scenario.events if isinstance(e, dict) and "-bad-" not in e["id"]}


def consumed(port: int, topic: str) -> float:
    """How many messages of ``topic`` a service process has consumed since it started (its /metrics)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    found = re.search(rf'^crm_events_consumed_total{{topic="{re.escape(topic)}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0
