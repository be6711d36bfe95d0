"""Typed settings, read once from ``CRM_*`` environment variables and an optional ``.env``."""

from __future__ import annotations

import hashlib
import hmac
import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Role = Literal["reader", "operator", "admin"]
ROLES: tuple[Role, ...] = ("reader", "operator", "admin")


CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cores() -> int:
    """The CPUs this process may use: those it may run on (its affinity, where the system tells), fewer when a
    CPU quota caps it (a container's ``--cpus``, cgroup v2's ``cpu.max``: 200000 µs a 100000 µs period is 2)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError, ZeroDivisionError):
        pass  # no cgroup v2 quota to read: the affinity stands
    return cores


def default_identity_workers() -> int:
    """One identity worker on two cores or fewer, two on more.

    On two cores a second worker costs more than it gives (issue 13, session 29, `deploy/SCALING.md`): both
    processes poll, relay and take turns at the one SQLite file's write lock, each batch half as big, and
    small batches cost more per event. One worker carried 6% more at full speed and cut every service's p99 at
    1,000 events/s offered by a fifth to two fifths. Identity alone with both cores took more with two. Above
    two cores it is not measured; two keeps the hand-over of partitions when a worker stops."""
    return 1 if usable_cores() <= 2 else 2


class Settings(BaseSettings):
    """Everything a service reads from its environment, validated at start-up."""

    # Inputs stay out of validation errors: they hold secrets (keys, the master key) that start-up logs print.
    model_config = SettingsConfigDict(env_prefix="CRM_", env_file=".env", extra="ignore", hide_input_in_errors=True)

    env: Literal["dev", "prod"] = "dev"
    data_dir: str = ".crm"
    kafka_bootstrap: str = "127.0.0.1:9092"
    store_url: str = ""
    topic_prefix: str = ""
    topic_partitions: int = Field(4, ge=1)
    default_region: str = "CN"
    timezone: str = "Asia/Shanghai"
    # Per-store timezone overrides as "STORE=Zone,STORE2=Zone"; purchase days are counted in them.
    store_timezones: str = ""
    pseudonym_secret: SecretStr | None = None
    # Base64 of 32 random bytes: wraps every customer's data key (encryption at rest, shared/storage/crypto.py).
    master_key: SecretStr | None = None
    # API keys as "KEY:ROLE" or "KEY:ROLE@store=ID" / "KEY:ROLE@region=NAME", comma separated (shared/access/keys.py);
    # the file holds more of them, one a line, and is re-read when it changes (no restart).
    api_keys: str = ""
    api_keys_file: str = ""
    # The stores registry (CSV or JSON), re-read when it changes (shared/access/stores.py).
    stores_file: str = ""
    # Staff accounts (JSON or CSV, written by `crm staff add`) and the tokens they sign in for.
    staff_file: str = ""
    token_secret: SecretStr | None = None
    token_ttl_s: int = Field(900, ge=30, le=86_400)
    # Signed-out tokens (shared/access/revocations.py): the services other than identity fetch identity's list of
    # revoked token ids again when their copy is older than this (0: on every token request); identity's URL
    # (empty: http://<api_host>:<identity_port>, as `crm up` runs it).
    token_revocation_poll_s: float = Field(1.0, ge=0, le=60)
    identity_url: str = ""
    # Sign-ins (POST /v1/auth/token) per client address: every try costs a memory-hard hash.
    sign_in_rate_limit: str = "10/minute"
    sign_in_rate_limit_burst: int = Field(10, ge=1)
    # Identifier values that must never link anything, beyond the built-in rules.
    blocked_phones: str = ""
    blocked_identifiers: str = "0,null,none,undefined,test,unknown,n/a,-"
    batch_size: int = Field(1000, ge=1, le=5000)
    batch_within_s: float = Field(0.05, gt=0)
    session_timeout_s: float = 6.0
    heartbeat_interval_s: float = 2.0
    # How long a consumer's fetch may wait on an idle partition (faust's own 1500 ms adds that to latency).
    fetch_max_wait_ms: int = Field(100, ge=1, le=5000)
    log_level: str = "INFO"
    # Worker processes per service in the embedded platform (`crm up`); they share the work through their
    # consumer group and the service's database. Identity, the platform's front door, runs one on two cores or
    # fewer and two on more (`default_identity_workers`).
    identity_workers: int = Field(default_factory=default_identity_workers, ge=1, le=16)
    loyalty_workers: int = Field(1, ge=1, le=16)
    alerts_workers: int = Field(1, ge=1, le=16)
    campaigns_workers: int = Field(1, ge=1, le=16)
    identity_port: int = 8001
    loyalty_port: int = 8002
    alerts_port: int = 8003
    campaigns_port: int = 8004
    api_host: str = "127.0.0.1"
    # Rate limits per key on every /v1 route (shared/http/ratelimit.py), as "COUNT/UNIT" refilled evenly with a burst.
    # They live in the API process's memory: one process serves each service's port.
    rate_limits: bool = True
    rate_limit: str = "200/second"
    rate_limit_burst: int = Field(400, ge=1)
    # Requests without a known key, per client address.
    anonymous_rate_limit: str = "10/second"
    anonymous_rate_limit_burst: int = Field(20, ge=1)
    # Identifier lookups by non-admin keys, and the lookups among them that find nobody (failed guesses).
    lookup_rate_limit: str = "20/minute"
    lookup_rate_limit_burst: int = Field(60, ge=1)
    lookup_miss_limit: str = "30/hour"
    lookup_miss_limit_burst: int = Field(20, ge=1)
    # POST /v1/events is charged per event; the burst holds at least one full batch.
    ingest_event_limit: str = "20000/second"
    ingest_event_limit_burst: int = Field(40000, ge=1000)
    # Ingestion requests handled at once; more are answered 503 "overloaded" instead of queueing.
    ingest_max_in_flight: int = Field(4, ge=1, le=256)
    # The span file rotates at this size, keeping this many older files (traces.jsonl.1, .2).
    trace_file_max_mb: float = Field(64, gt=0)
    trace_file_keep: int = Field(2, ge=1, le=10)
    # Share of events traced when OTEL_TRACES_SAMPLER is not set (parent-based: an event whose publisher
    # sent a sampled traceparent is traced whatever the ratio). 1 traces every event (`crm trace` on any
    # event id); a span per message per service costs more than a third of a downstream service's work.
    trace_ratio: float = Field(0.1, ge=0, le=1)
    # Largest HTTP request body a service reads (413 beyond it), checked while the body streams in:
    # 16 MiB holds a POST /v1/events batch of 1,000 events of 16 KiB each.
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    # The largest channel event accepted, in bytes of its JSON: larger ones are rejected over HTTP and
    # dead-lettered (`too_large`) by the consumer before anything stores them. Kept well below the 1 MB a
    # Kafka broker takes by default, so every message derived from an event (resolved event, dead
    # letter) fits too.
    max_event_bytes: int = Field(256 * 1024, ge=1024, le=512 * 1024)
    # Currencies purchases may be in (ISO 4217 codes, comma separated); others are rejected, never converted.
    currencies: str = "CNY"
    # How long a publish may wait for the broker's acknowledgement before it counts as failed.
    publish_timeout_s: float = Field(10.0, gt=0, le=120)
    # /readyz turns unready when the batch runner has been retrying a failure for this long.
    stall_after_s: float = Field(30.0, gt=0)
    # Issue 12, retention (H5): days after which each service's timer purges a kind of data (0 keeps it):
    # raw timeline payloads (identity keeps type, time and channel), dead letters (whole raw messages),
    # the audit log (three years: PIPL article 55's records). Checked every retention_interval_s.
    retention_timeline_days: int = Field(365, ge=0, le=36500)
    retention_deadletter_days: int = Field(30, ge=0, le=36500)
    retention_audit_days: int = Field(1095, ge=0, le=36500)
    retention_interval_s: float = Field(3600.0, gt=0)

    @field_validator("master_key")
    @classmethod
    def _master_key_shape(cls, value: SecretStr | None) -> SecretStr | None:
        from shared.storage.crypto import parse_master_key

        if value is not None:
            parse_master_key(value.get_secret_value())
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        ZoneInfo(value)
        return value

    @field_validator("rate_limit", "anonymous_rate_limit", "lookup_rate_limit", "lookup_miss_limit",
                     "ingest_event_limit", "sign_in_rate_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        from shared.http.ratelimit import parse_rate

        parse_rate(value)
        return value

    @field_validator("store_timezones")
    @classmethod
    def _known_store_zones(cls, value: str) -> str:
        # Checked here, at start-up: an unknown zone would otherwise fail every purchase at that store.
        for part in filter(None, (p.strip() for p in value.split(","))):
            store, _, zone = part.partition("=")
            if not store.strip() or not zone.strip():
                raise ValueError("CRM_STORE_TIMEZONES entries look like STORE=Area/City")
            try:
                ZoneInfo(zone.strip())
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"CRM_STORE_TIMEZONES: unknown timezone for store {store.strip()}") from None
        return value

    @field_validator("currencies")
    @classmethod
    def _currency_codes(cls, value: str) -> str:
        codes = [c.strip().upper() for c in value.split(",") if c.strip()]
        if not codes or any(len(c) != 3 or not c.isalpha() or not c.isascii() for c in codes):
            raise ValueError("CRM_CURRENCIES lists ISO 4217 codes such as CNY,HKD")
        return ",".join(codes)

    @model_validator(mode="after")
    def _secrets_outside_dev(self) -> Settings:
        if self.env == "prod":
            if self.pseudonym_secret is None or len(self.pseudonym_secret.get_secret_value()) < 16:
                raise ValueError("CRM_PSEUDONYM_SECRET (at least 16 characters) is required in prod")
            if not self.api_keys and not self.api_keys_file and not self.staff_file:
                raise ValueError("CRM_API_KEYS, CRM_API_KEYS_FILE or CRM_STAFF_FILE is required in prod")
            # Always: every service accepts tokens, so without a secret of its own the public dev key would do.
            if self.token_secret is None or len(self.token_secret.get_secret_value()) < 32:
                raise ValueError("CRM_TOKEN_SECRET (at least 32 characters) is required in prod")
            if self.master_key is None:
                raise ValueError("CRM_MASTER_KEY (base64 of 32 random bytes) is required in prod")
        from shared.access.keys import parse_keys

        parse_keys(self.api_keys, source="CRM_API_KEYS")  # a bad entry stops the start, naming its position
        return self

    def workers_of(self, service: str) -> int:
        """How many worker processes the embedded platform runs for a service."""
        return getattr(self, f"{service}_workers", 1)

    def topic(self, name: str) -> str:
        """A topic name with this deployment's prefix."""
        return f"{self.topic_prefix}{name}"

    def identity_base_url(self) -> str:
        """Where the services reach identity's API (revoked tokens)."""
        host = "127.0.0.1" if self.api_host in ("0.0.0.0", "::", "") else self.api_host
        return (self.identity_url or f"http://{host}:{self.identity_port}").rstrip("/")

    def resolved_store_url(self) -> str:
        """The store URL, defaulting to an SQLite file under the data directory."""
        return self.store_url or f"sqlite:///{self.data_dir}/crm.db"

    def secret_bytes(self) -> bytes:
        """The pseudonym key; in dev a fixed development key stands in when none is set."""
        if self.pseudonym_secret is not None:
            return self.pseudonym_secret.get_secret_value().encode()
        return b"crm-dev-only-pseudonym-key"

    def master_key_bytes(self) -> bytes:
        """The master key; in dev a fixed development key stands in when none is set (``crm up`` sets one)."""
        from shared.storage.crypto import DEV_MASTER_KEY, parse_master_key

        if self.master_key is not None:
            return parse_master_key(self.master_key.get_secret_value())
        return DEV_MASTER_KEY

    def key_roles(self) -> dict[str, Role]:
        """The keys of ``CRM_API_KEYS`` and their roles (for local tools; services hold keys only hashed)."""
        from shared.access.keys import parse_keys

        return {e.key: e.role for e in parse_keys(self.api_keys, source="CRM_API_KEYS")}

    def token_key(self) -> bytes:
        """The key tokens are signed with; in dev a fixed development key stands in when none is set."""
        if self.token_secret is not None and self.token_secret.get_secret_value():
            return self.token_secret.get_secret_value().encode()
        return b"crm-dev-only-token-key-not-for-production"

    def name_key(self) -> bytes:
        """The key that turns an API key into its display name: the same in every process of the platform."""
        return hmac.new(self.secret_bytes(), b"crm api key display name", hashlib.sha256).digest()

    def store_zone(self, store_id: str | None) -> ZoneInfo:
        """The timezone a store counts its days in."""
        if store_id:
            for part in filter(None, (p.strip() for p in self.store_timezones.split(","))):
                sid, _, zone = part.partition("=")
                if sid.strip() == store_id:
                    return ZoneInfo(zone.strip())
        return ZoneInfo(self.timezone)

    def currency_set(self) -> frozenset[str]:
        """The currencies purchases may be in."""
        return frozenset(self.currencies.split(","))

    def blocked_phone_set(self) -> frozenset[str]:
        """Configured phones (any notation) that never link."""
        return frozenset(p.strip() for p in self.blocked_phones.split(",") if p.strip())

    def blocked_identifier_set(self) -> frozenset[str]:
        """Configured placeholder values that never link, compared case-insensitively."""
        return frozenset(p.strip().lower() for p in self.blocked_identifiers.split(",") if p.strip())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
