"""``crm bench http`` offers only events identity accepts, each once, so every 202 must become a stored event."""

from __future__ import annotations

import json

from crm.bench.http import Batches
from services.identity.domain.cleaning import Cleaning, prepare


def test_every_offered_event_is_valid_and_has_an_id_of_its_own():
    batches = Batches("r1", 100)
    events = [e for _ in range(600) for e in json.loads(batches.next())]
    assert len(events) == 60_000 and len({e["id"] for e in events}) == 60_000
    cleaning = Cleaning()
    assert all(prepare(e, cleaning).idents for e in events[::30])  # 2,000 spread over every batch
