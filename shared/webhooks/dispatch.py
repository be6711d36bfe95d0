"""The dispatcher: sends pending deliveries, signed, apart from consumption (its own thread and event loop).

It takes due deliveries from the store under a lease, sends each with a total timeout and at most
``concurrency`` requests in flight, and writes down every attempt. A 2xx delivers; a connection error, a
timeout, a 429 or a 5xx is tried again after tenacity's exponential wait (the time of the next try is kept
in the store, so retries survive a restart); any other answer, or the last try failing, makes the delivery
dead with its reason. Delivery is at least once: a dispatcher that dies mid-request leaves the delivery to
be taken again when its lease lapses; receivers deduplicate by event id (``CRM-Event-Id``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from types import SimpleNamespace

import httpx
from tenacity import wait_exponential

from shared.clock import iso_utc
from shared.webhooks import signing
from shared.webhooks.config import WebhooksConfig
from shared.webhooks.store import Delivery, Subscription, WebhookStore
from shared.webhooks.urls import Unresolved, UnsafeUrl, check_url

log = logging.getLogger(__name__)

USER_AGENT = "CRM-Webhooks/1.0"
PURGE_EVERY_S = 3600.0


class _Retry(Exception):
    """An attempt that may succeed later (connection error, timeout, 429, 5xx)."""


class _Fatal(Exception):
    """An attempt no retry will fix (another 4xx, a 3xx, a URL refused)."""


def next_wait_s(attempts: int, config: WebhooksConfig) -> float:
    """Seconds before the try after ``attempts`` failed ones: tenacity's exponential wait."""
    wait = wait_exponential(multiplier=config.backoff_s, max=config.backoff_max_s)
    return float(wait(SimpleNamespace(attempt_number=attempts)))


class Dispatcher:
    """Sends the store's due deliveries; ``start()`` runs it in a daemon thread, ``stop()`` ends it."""

    def __init__(self, store: WebhookStore, config: WebhooksConfig, *,
                 now: Callable[[], float] = time.time) -> None:
        self.store, self.config, self.now = store, config, now
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        """Run in a daemon thread of its own (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stopping.clear()
            self._thread = threading.Thread(target=lambda: asyncio.run(self.run()), name="webhooks-dispatch",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop taking deliveries; requests in flight are abandoned (their leases lapse, they are sent again)."""
        self._stopping.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def wake(self) -> None:
        """Look for due deliveries now rather than at the next poll (new ones were recorded)."""
        loop, event = self._loop, self._wake
        if loop is not None and event is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the loop closed in between
                pass

    async def run(self) -> None:
        """Take and send due deliveries until stopped."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        in_flight: set[asyncio.Task] = set()
        cfg = self.config
        limits = httpx.Limits(max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency)
        async with httpx.AsyncClient(timeout=cfg.timeout_s, limits=limits, follow_redirects=False,
                                     trust_env=False) as client:
            purged_at = 0.0
            while not self._stopping.is_set():
                try:
                    self._take(client, in_flight)
                    if self.now() - purged_at >= PURGE_EVERY_S:
                        purged_at = self.now()
                        self.purge()
                except Exception as exc:  # a store that is locked or away: try again at the next poll
                    log.warning("webhooks: taking due deliveries failed (%s)", type(exc).__name__)
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), cfg.poll_s)
                except TimeoutError:
                    pass
            for task in in_flight:
                task.cancel()

    def purge(self) -> int:
        """Forget delivered and dead deliveries older than ``keep_days``."""
        return self.store.deliveries_purge(before=iso_utc_now(lambda: self.now() - self.config.keep_days * 86400))

    def _take(self, client: httpx.AsyncClient, in_flight: set[asyncio.Task]) -> None:
        free = self.config.concurrency - len(in_flight)
        if free <= 0:
            return
        subs = {s.webhook_id: s for s in self.store.subscriptions(enabled_only=True)}
        now_ms = int(self.now() * 1000)
        # The lease outlasts the request's timeout: a dispatcher alive never loses a delivery it is sending.
        lease = now_ms + int((self.config.timeout_s + 30) * 1000)
        for d in self.store.deliveries_due(now_ms=now_ms, lease_ms=lease, limit=free, webhook_ids=sorted(subs)):
            task = asyncio.get_running_loop().create_task(self._deliver(client, d, subs[d.webhook_id]))
            in_flight.add(task)
            task.add_done_callback(lambda t: (in_flight.discard(t), self._wake.set()))

    async def _deliver(self, client: httpx.AsyncClient, d: Delivery, sub: Subscription) -> None:
        if self.store.delivery(d.delivery_id) is None:
            return  # deleted since it was taken (its customer erased): never sent
        try:
            status = await self.attempt(client, d, sub)
            done = replace(d, status="delivered", last_status=status, last_error=None)
        except _Retry as exc:
            done = self._failed(d, str(exc), getattr(exc, "status", None), final=False)
        except _Fatal as exc:
            done = self._failed(d, str(exc), getattr(exc, "status", None), final=True)
        except Exception as exc:  # anything unforeseen counts as a failed try, never as a delivery lost
            done = self._failed(d, f"sending failed ({type(exc).__name__})", None, final=False)
        done = replace(done, attempts=d.attempts + 1, lease_ms=0, updated_at=iso_utc_now(self.now))
        try:
            self.store.delivery_update(done)
        except Exception as exc:  # kept pending under its lease: sent again once the lease lapses
            log.warning("webhooks: recording a delivery attempt failed (%s)", type(exc).__name__)

    def _failed(self, d: Delivery, error: str, status: int | None, *, final: bool) -> Delivery:
        attempts = d.attempts + 1
        if final or attempts >= self.config.max_attempts:
            reason = error if final else f"gave up after {attempts} attempts; last: {error}"
            return replace(d, status="dead", last_status=status, last_error=error, dead_reason=reason)
        next_ms = int((self.now() + next_wait_s(attempts, self.config)) * 1000)
        return replace(d, status="pending", last_status=status, last_error=error, next_ms=next_ms)

    async def attempt(self, client: httpx.AsyncClient, d: Delivery, sub: Subscription) -> int:
        """One signed POST of the delivery; its status code on a 2xx, else raises ``_Retry`` or ``_Fatal``."""
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: check_url(sub.url, block_private=self.config.block_private))
        except Unresolved as exc:  # a lookup that failed now may succeed at the next try
            raise _Retry(f"URL refused: {exc}") from None
        except UnsafeUrl as exc:
            raise _Fatal(f"URL refused: {exc}") from None
        body = d.body.encode()
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   signing.HEADER: signing.sign(sub.secret, body, t=int(self.now())),
                   "CRM-Event-Id": d.event_id, "CRM-Event-Type": d.event_type, "CRM-Delivery-Id": d.delivery_id,
                   "CRM-Delivery-Attempt": str(d.attempts + 1)}
        try:
            async with asyncio.timeout(self.config.timeout_s):  # the whole request, however the receiver trickles
                response = await client.post(sub.url, content=body, headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            raise _Retry(f"no answer within {self.config.timeout_s:g} s") from None
        except httpx.TransportError as exc:
            raise _Retry(f"connection failed ({type(exc).__name__})") from None
        code = response.status_code
        if 200 <= code < 300:
            return code
        error = _Retry if code == 429 or code >= 500 else _Fatal
        exc = error(f"HTTP {code}" + ("" if error is _Retry else " (not retried)"))
        exc.status = code
        raise exc


def iso_utc_now(now: Callable[[], float]) -> str:
    """``now()`` (epoch seconds) as ISO-8601 UTC."""
    from datetime import UTC, datetime

    return iso_utc(datetime.fromtimestamp(now(), UTC))
