"""The console's service clients: a connection that breaks before any answer (a pooled one the service's server
had just closed) costs a GET nothing, and is a 503 for anything that may have acted."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from services.console.clients import ApiError, Clients
from services.console.config import ConsoleSettings
from shared.settings import Settings


def _clients(broken: int) -> tuple[Clients, list[str]]:
    """Clients whose transport breaks the first ``broken`` connections, then answers 200; the methods it saw."""
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        if len(seen) <= broken:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return httpx.Response(200, json={"ok": True})

    clients = Clients(ConsoleSettings(_env_file=None), Settings(_env_file=None, token_secret="x" * 40),
                      transport=httpx.MockTransport(answer))
    return clients, seen


def test_a_get_on_a_connection_that_broke_before_answering_is_asked_again_once():
    clients, seen = _clients(broken=1)
    assert asyncio.run(clients.get("alerts", "/v1/alerts", token="t")) == {"ok": True}
    assert seen == ["GET", "GET"]


def test_a_get_that_breaks_twice_is_the_service_not_answering():
    clients, seen = _clients(broken=2)
    with pytest.raises(ApiError) as raised:
        asyncio.run(clients.get("alerts", "/v1/alerts", token="t"))
    assert (raised.value.status, raised.value.code, seen) == (503, "unavailable", ["GET", "GET"])


def test_a_post_that_breaks_is_not_sent_again():
    clients, seen = _clients(broken=1)
    with pytest.raises(ApiError) as raised:
        asyncio.run(clients.post("loyalty", "/v1/customers/c1/redemptions", token="t", body={"reward_id": "r"}))
    assert (raised.value.status, seen) == (503, ["POST"])
