"""``crm replay --http`` and ``crm demo`` post through identity's rate limits: a batch answered 429 or 503
was not taken, so it is sent again after ``Retry-After`` instead of being counted as neither accepted nor
rejected and dropped."""

from __future__ import annotations

import json
import threading
import time

import uvicorn

from crm.broker import free_port
from crm.replay import post_lines
from shared.http.ratelimit import RateLimits
from tests.unit.shared.test_ratelimit import OPERATOR, Clock, _app


def test_a_batch_over_the_event_budget_is_sent_again_after_retry_after():
    app = _app(Clock(), ingest_event_limit="1000/second", ingest_event_limit_burst=1000)
    app.state.rate_limits = RateLimits(app.state.rate_limits.settings)  # the real clock: the client waits
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        lines = [json.dumps({"id": f"e-{i}"}) for i in range(1500)]
        started = time.monotonic()
        totals = post_lines(lines, f"http://127.0.0.1:{port}", OPERATOR, batch=500)
        took = time.monotonic() - started
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert totals == {"accepted": 1500, "rejected": 0}
    assert took >= 1  # the third batch waited for its Retry-After
