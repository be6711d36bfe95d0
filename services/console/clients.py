"""The console's only way to data: each service's HTTP API with the signed-in person's bearer token, one pooled
httpx client per service, so every scope rule holds exactly as in the API."""

from __future__ import annotations

from typing import Any

import httpx

from services.console.config import ConsoleSettings
from shared.settings import Settings

SERVICES = ("identity", "loyalty", "alerts", "campaigns")


class ApiError(Exception):
    """A service answered with an error (or did not answer: status 503, code ``unavailable``)."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}")
        self.status, self.code, self.message, self.details = status, code, message, details


KEEPALIVE_S = 2.0


class Clients:
    """One pooled client per service; ``call`` raises ``ApiError`` for any answer but 2xx."""

    def __init__(self, console: ConsoleSettings, platform: Settings,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        # An idle pooled connection is dropped well before the services' servers close theirs (uvicorn: 5 s), so
        # a request is seldom sent on a connection the server is closing at that moment.
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=20, keepalive_expiry=KEEPALIVE_S)
        self.http = {name: httpx.AsyncClient(base_url=console.service_url(name, platform), timeout=console.timeout_s,
                                             limits=limits, transport=transport) for name in SERVICES}

    async def close(self) -> None:
        """Close every pool (at shutdown)."""
        for client in self.http.values():
            await client.aclose()

    async def call(self, service: str, method: str, path: str, *, token: str | None, params: dict | None = None,
                   json: Any = None, data: dict | None = None, files: dict | None = None,
                   headers: dict | None = None, as_text: bool = False) -> Any:
        """One request to ``service``; the decoded JSON body of a 2xx answer (its text with ``as_text``, as for
        a CSV; None for 204)."""
        headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
        query = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        client = self.http[service]
        try:
            try:
                r = await client.request(method, path, params=query, json=json, data=data, files=files,
                                         headers=headers)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                # The connection broke before any answer (a pooled one the server had just closed): a GET asks
                # again once on a fresh one; anything else may have acted, so it is not repeated.
                if method != "GET":
                    raise
                r = await client.request(method, path, params=query, headers=headers)
        except httpx.HTTPError as exc:
            raise ApiError(503, "unavailable", f"{service} did not answer") from exc
        if r.status_code == 204:
            return None
        if r.is_success:
            return r.text if as_text else r.json()
        try:
            error = r.json().get("error") or {}
        except ValueError:
            error = {}
        raise ApiError(r.status_code, error.get("code", "error"), error.get("message", r.reason_phrase),
                       error.get("details"))

    async def get(self, service: str, path: str, *, token: str, **params: Any) -> Any:
        """GET ``path`` of ``service`` with query ``params`` (None values left out)."""
        return await self.call(service, "GET", path, token=token, params=params)

    async def post(self, service: str, path: str, *, token: str, body: Any = None,
                   headers: dict | None = None) -> Any:
        """POST a JSON ``body`` to ``path`` of ``service`` (``headers`` such as an Idempotency-Key)."""
        return await self.call(service, "POST", path, token=token, json=body, headers=headers)

    async def optional(self, service: str, path: str, *, token: str, **params: Any) -> Any:
        """GET that answers None when the service has nothing (404) or cannot answer (503): for panels a
        page can show without, such as the value and CLV of a customer with no purchases yet."""
        try:
            return await self.get(service, path, token=token, **params)
        except ApiError as exc:
            if exc.status in (404, 409, 503):
                return None
            raise

    async def sign_in(self, user: str, password: str) -> dict:
        """Identity's OAuth2 password flow: ``{"access_token", "expires_in"}``."""
        return await self.call("identity", "POST", "/v1/auth/token", token=None,
                               data={"username": user, "password": password, "grant_type": "password"})

    async def sign_out(self, token: str) -> None:
        """Revoke ``token`` at identity (``POST /v1/auth/sign-out``): every service refuses it from then on."""
        await self.call("identity", "POST", "/v1/auth/sign-out", token=token)
