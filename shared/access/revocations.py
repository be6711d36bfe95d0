"""Signed-out staff tokens: every service refuses a token whose id (``jti``) identity has revoked.

Identity keeps the revoked ids in its store (``POST /v1/auth/sign-out``) and looks each token up there. The other
services keep a copy of the list, fetched again from identity's ``GET /v1/auth/revocations`` before a token is
accepted whenever the copy is older than ``CRM_TOKEN_REVOCATION_POLL_S`` (1 s; 0: on every token request), so a
signed-out token is refused by every service within that time (a service without any copy refuses tokens). A
token is stateless otherwise: nothing else could tell a copied token from the person's own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

import httpx

from shared.access.tokens import Tokens
from shared.http.errors import Unavailable
from shared.settings import Settings

log = logging.getLogger(__name__)

REVOCATIONS_PATH = "/v1/auth/revocations"
# The name the services' own fetch of the list signs as (never a staff account: those cannot start so).
POLLER = "service.token-revocations"
# The audience of the services' own token for that fetch: identity's list accepts it, no other route does
# (it is sent a few times a second, over the services' network).
REVOCATIONS_AUDIENCE = "crm:token-revocations"


class Revocations(Protocol):
    """What the authenticator asks: bring the list up to date (async, before a token is judged), then look up."""

    async def refresh(self) -> None: ...

    def revoked(self, token_id: str) -> bool: ...


class StoreRevocations:
    """Identity's own: each token looked up in its store, so sign-out holds there from the moment it answers."""

    def __init__(self, lookup: Callable[[str], bool]) -> None:
        self._lookup = lookup

    async def refresh(self) -> None:
        """Nothing to fetch: the store is the list."""

    def revoked(self, token_id: str) -> bool:
        """Whether identity's store holds ``token_id`` as signed out."""
        return self._lookup(token_id)


class PolledRevocations:
    """Another service's copy of identity's list, fetched when older than the poll interval.

    When identity does not answer, the last list fetched stays in force (logged once per outage). A service that
    never got a list (started while identity was down) cannot tell a signed-out token: it refuses every token
    (``503 token_check_unavailable``, API keys unaffected) until a fetch succeeds."""

    def __init__(self, settings: Settings, *, tokens: Tokens, transport: httpx.AsyncBaseTransport | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = settings.identity_base_url() + REVOCATIONS_PATH
        self.poll_s = settings.token_revocation_poll_s
        self._tokens, self._transport, self._clock = tokens, transport, clock
        self._expiry: dict[str, int] | None = None  # None until the first fetch succeeds
        self._fetched_at: float | None = None
        self._failing = False
        self._pending: asyncio.Task | None = None

    async def refresh(self) -> None:
        """Make sure the copy is younger than the poll interval, fetching it again if not (one fetch at a time).

        From half the interval on, a request starts the fetch without waiting for it: under steady traffic the
        copy is renewed in the background, and only a request that finds it older than the interval waits.
        Without any list yet, every request waits for a fetch, and ``Unavailable`` when it fails."""
        listed = self._expiry is not None
        age = None if self._fetched_at is None else self._clock() - self._fetched_at
        if listed and age is not None and self.poll_s > 0 and age < self.poll_s / 2:
            return
        loop = asyncio.get_running_loop()
        pending = self._pending
        if pending is None or pending.done() or pending.get_loop() is not loop:
            pending = self._pending = loop.create_task(self._fetch())
        if not listed or age is None or self.poll_s == 0 or age >= self.poll_s:
            await asyncio.shield(pending)
        if self._expiry is None:
            raise Unavailable("token_check_unavailable", "signed-out tokens cannot be checked now (identity does "
                                                         "not answer); an API key works, or try again shortly")

    def revoked(self, token_id: str) -> bool:
        """Whether the copy lists ``token_id`` (no copy yet: :meth:`refresh` refuses the token first)."""
        return self._expiry is not None and token_id in self._expiry

    async def _fetch(self) -> None:
        started = self._clock()
        # Signed with the secret every service shares, for identity's list only (REVOCATIONS_AUDIENCE).
        bearer = self._tokens.issue_for(REVOCATIONS_AUDIENCE, name=POLLER, ttl_s=60)
        try:
            async with httpx.AsyncClient(transport=self._transport, timeout=2.0) as client:
                r = await client.get(self.url, headers={"Authorization": f"Bearer {bearer}"})
            r.raise_for_status()
            items = r.json()["items"]
            self._expiry = {str(i["token_id"]): int(i["expires_at"]) for i in items}
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            if not self._failing:
                log.warning("token revocations: identity did not answer (%s); the last list stays in force",
                            type(exc).__name__)
            self._failing = True
        else:
            if self._failing:
                log.info("token revocations: identity answers again")
            self._failing = False
        self._fetched_at = started
