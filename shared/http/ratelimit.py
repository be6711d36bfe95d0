"""Per-key rate limits and load shedding on every ``/v1`` route, as two ASGI middlewares around the gate.

Budgets, each a token bucket (GCRA: one timestamp per key, exact ``Retry-After``):

- every request of a known key counts against that key's general budget; requests without a known
  key count against their client IP's (much smaller) budget, so guessing keys is throttled too;
- identifier lookups (``/v1/customers/lookup``, and by name ``/v1/customers/search``) by a non-admin
  key also count against a lookup budget, and a lookup that finds nobody (404, a failed guess) against
  a much stricter miss budget, so trying a masked phone's 10,000 middles takes weeks (admins read phones
  unmasked already);
- ``POST /v1/auth/token`` (a staff sign-in, on identity) counts against its client address's sign-in
  budget: each try costs a memory-hard password hash, and password guessing must be slow;
- ``POST /v1/events`` counts events, not requests, against the key's event budget, and at most
  ``ingest_max_in_flight`` ingestion requests run at once: more answer 503 ``overloaded`` at once
  instead of queueing without bound. This part runs behind the gate (``shared.http.guard``), so a request
  it refuses (401/403/413/415) spends no events and holds no slot, and a slow upload holds none either.

Limits are kept in process memory: each service's API runs in one process (``crm up`` serves a
service's port from its first worker only), so a budget is per key per service.

Hand-written rather than the ``limits`` package: its memory storage reads ``time.time()`` itself
(tests could not set the clock), keeps one entry per unit of cost (an event budget of thousands per
second would store thousands of entries per key) and starts a timer thread; GCRA needs a few lines.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import FastAPI

from shared.http.guard import CALLER_SCOPE_KEY
from shared.settings import Settings

LOOKUP_PATHS = frozenset({"/v1/customers/lookup", "/v1/customers/search"})  # search: by name (issue 16)
INGEST_PATH = "/v1/events"
SIGN_IN_PATH = "/v1/auth/token"
_UNITS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day)s?\s*$")


def parse_rate(text: str) -> tuple[int, float]:
    """``"50/second"``, ``"30/hour"`` or ``"100/5minutes"`` as (count, period in seconds)."""
    m = _RATE.match(text.lower())
    if not m or int(m.group(1)) < 1:
        raise ValueError(f"a rate looks like 50/second or 30/hour, not {text!r}")
    return int(m.group(1)), _UNITS[m.group(3)] * int(m.group(2) or 1)


class Bucket:
    """A token bucket per key as GCRA: ``burst`` at once, refilled at ``count`` per ``period_s``."""

    def __init__(self, rate: str, burst: int, *, clock: Callable[[], float], max_keys: int = 100_000) -> None:
        count, period_s = parse_rate(rate)
        self.interval = period_s / count
        self.burst = max(1, burst)
        self.clock = clock
        self.max_keys = max_keys
        self._tat: dict[str, float] = {}  # key -> theoretical arrival time of the next unit

    def take(self, key: str, cost: int = 1) -> float:
        """Spend ``cost`` units; 0 when allowed, else the seconds until they would be."""
        cost = min(max(1, cost), self.burst)
        now = self.clock()
        tat = max(self._tat.get(key, now), now) + cost * self.interval
        wait = tat - self.burst * self.interval - now
        if wait > 1e-9:  # float sums of the interval must not refuse the burst's last unit
            return wait
        if len(self._tat) >= self.max_keys:
            self._forget_full(now)
        self._tat[key] = tat
        return 0.0

    def give_back(self, key: str, cost: int = 1) -> None:
        """Return units taken for work that turned out not to count."""
        if key in self._tat:
            self._tat[key] -= cost * self.interval

    def _forget_full(self, now: float) -> None:
        # A key whose bucket has refilled holds nothing worth remembering.
        for key in [k for k, tat in self._tat.items() if tat <= now]:
            del self._tat[key]


@dataclass
class RateLimits:
    """Every budget of one service's API, with the clock they read (tests pass their own)."""

    settings: Settings
    clock: Callable[[], float] = time.monotonic
    in_flight: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        s, c = self.settings, self.clock
        self.requests = Bucket(s.rate_limit, s.rate_limit_burst, clock=c)
        self.anonymous = Bucket(s.anonymous_rate_limit, s.anonymous_rate_limit_burst, clock=c)
        self.lookups = Bucket(s.lookup_rate_limit, s.lookup_rate_limit_burst, clock=c)
        self.misses = Bucket(s.lookup_miss_limit, s.lookup_miss_limit_burst, clock=c)
        self.events = Bucket(s.ingest_event_limit, s.ingest_event_limit_burst, clock=c)
        self.sign_ins = Bucket(s.sign_in_rate_limit, s.sign_in_rate_limit_burst, clock=c)


def install_ingest_shedding(app: FastAPI, settings: Settings) -> None:
    """Ingestion's event budget and in-flight bound, behind the gate: it runs once the key, the role and the
    body's size and type are settled, so a request the gate refuses costs nothing and holds no slot."""
    app.state.rate_limits = RateLimits(settings)
    if settings.rate_limits:
        app.add_middleware(IngestSheddingMiddleware)


def install_rate_limits(app: FastAPI, settings: Settings) -> None:
    """The request, keyless and lookup budgets, in front of the gate (so guessing keys is throttled too)."""
    if settings.rate_limits:
        app.add_middleware(RateLimitMiddleware)


def _answer(status: int, code: str, message: str, retry_after_s: float, budget: str):
    seconds = max(1, math.ceil(retry_after_s))
    body = json.dumps({"error": {"code": code, "message": message,
                                 "details": {"budget": budget, "retry_after_s": seconds}}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"retry-after", str(seconds).encode())]

    async def respond(send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return respond


def _limited(wait: float, budget: str, what: str):
    return _answer(429, "rate_limited", f"too many {what}; retry after the time in Retry-After", wait, budget)


class RateLimitMiddleware:
    """Answers 429 (budget spent) or 503 (ingestion full) before the route runs, with ``Retry-After``."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        limits: RateLimits = scope["app"].state.rate_limits
        path = scope["path"]
        key, role = _caller(scope)
        client = scope.get("client")
        if path == SIGN_IN_PATH:
            # Each try costs a memory-hard hash, and guessing passwords must be slow: a budget per address.
            if wait := limits.sign_ins.take("ip:" + (client[0] if client else "unknown")):
                await _limited(wait, "sign_ins", "sign-in attempts from this address")(send)
                return
            await self.app(scope, receive, send)
            return
        if key is None:
            wait = limits.anonymous.take("ip:" + (client[0] if client else "unknown"))
            if wait:
                await _limited(wait, "anonymous", "requests without a valid key from this address")(send)
                return
            await self.app(scope, receive, send)
            return
        if wait := limits.requests.take(key):
            await _limited(wait, "requests", "requests for this key")(send)
            return
        if path in LOOKUP_PATHS and role != "admin":
            await self._lookup(limits, key, scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _lookup(self, limits: RateLimits, key: str, scope, receive, send) -> None:
        if wait := limits.lookups.take(key):
            await _limited(wait, "lookups", "lookups for this key")(send)
            return
        # The miss is reserved before the lookup runs, so parallel guesses cannot overrun the budget.
        if wait := limits.misses.take(key):
            limits.lookups.give_back(key)
            await _limited(wait, "lookup_misses", "lookups that found nobody for this key")(send)
            return
        status = 0

        async def noting(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting)
        finally:
            if status != 404:
                limits.misses.give_back(key)



class IngestSheddingMiddleware:
    """``POST /v1/events``: at most ``ingest_max_in_flight`` at once (503 ``overloaded`` beyond, at once,
    instead of queueing), and each key's event budget charged per event (429)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != INGEST_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        limits: RateLimits = scope["app"].state.rate_limits
        key, _ = _caller(scope)
        if limits.in_flight >= limits.settings.ingest_max_in_flight:
            await _answer(503, "overloaded", "ingestion is at capacity; retry after the time in Retry-After",
                          1, "in_flight")(send)
            return
        limits.in_flight += 1
        try:
            # The gate has read and bounded the body already: this only takes it from the gate's replay.
            messages, body = await _read_body(receive)
            events = await asyncio.to_thread(_count_events, body)  # a large body must not stall the loop
            if wait := limits.events.take(key or "unknown", events):
                await _limited(wait, "events", "events for this key")(send)
                return
            await self.app(scope, _replay(messages, receive), send)
        finally:
            limits.in_flight -= 1


def _caller(scope) -> tuple[str | None, str | None]:
    """The caller's bucket key (its non-secret id, never the key) and role; (None, None) for no known caller.

    A caller found here is left for the gate, so a request's credential is checked once."""
    if CALLER_SCOPE_KEY in scope:
        caller = scope[CALLER_SCOPE_KEY]
        return "p:" + caller.key_id, caller.role
    header = b""
    for name, value in scope["headers"]:
        if name == b"authorization":
            header = value
            break
    if not header:
        return None, None
    auth = scope["app"].state.auth
    caller = auth.identify(header.decode("latin-1"))
    if caller is None:
        # A service's own token for identity's list of signed-out tokens: its own budget, not its address's.
        service = auth.service_token(header.decode("latin-1"))
        return ("s:" + service, None) if service else (None, None)
    scope[CALLER_SCOPE_KEY] = caller
    return "p:" + caller.key_id, caller.role


async def _read_body(receive) -> tuple[list[dict], bytes | None]:
    """The request's messages as read, and its body (already bounded by the gate)."""
    messages, chunks = [], []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return messages, b"".join(chunks)


def _replay(messages: list[dict], receive):
    pending = list(messages)

    async def again():
        return pending.pop(0) if pending else await receive()

    return again


def _count_events(body: bytes | None) -> int:
    """Events in an ingestion body: the array's length, else one."""
    if not body:
        return 1
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return 1
    return max(1, len(parsed)) if isinstance(parsed, list) else 1
