"""The services' fetch of identity's list of signed-out tokens runs a few times a second under traffic: when
identity answers, it writes no log line (only an outage is logged, once)."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx

from shared.access.revocations import PolledRevocations
from shared.access.tokens import Tokens
from shared.observability.logs import setup_logging
from shared.settings import Settings


def test_fetching_the_list_writes_no_log_line_and_an_outage_one(capsys):
    setup_logging("loyalty")
    settings = Settings(_env_file=None, token_secret="revocations-logging-test-secret-0123456789",
                        token_revocation_poll_s=0)
    up = [True]

    def identity(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"items": []}) if up[0] else httpx.Response(503)

    polled = PolledRevocations(settings, tokens=Tokens(settings.token_key(), ttl_s=900),
                               transport=httpx.MockTransport(identity))

    async def requests(n: int) -> None:
        for _ in range(n):
            await polled.refresh()

    try:
        asyncio.run(requests(5))
        assert capsys.readouterr().err == ""
        up[0] = False
        asyncio.run(requests(3))
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
        assert [(x["level"], x["name"]) for x in lines] == [("WARNING", "shared.access.revocations")]
    finally:
        logging.getLogger().handlers.clear()
