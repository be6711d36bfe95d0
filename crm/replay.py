"""``crm replay``: publish events from a JSON-lines file to their channel topics (or the HTTP API)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from rich.progress import Progress

from shared.contract import topics
from shared.settings import Settings
from shared.streaming.kafka import Outgoing, Publisher


def topic_for(line: str, settings: Settings) -> str:
    """The channel topic of an event line (by its ``source``); unreadable lines go to POS's topic,
    where identity dead-letters them with the reason."""
    try:
        channel = str(json.loads(line).get("source", "")).split("/", 1)[0]
    except (ValueError, AttributeError):
        channel = ""
    return settings.topic(topics.CHANNEL_TOPICS.get(channel, topics.CHANNEL_POS))


def publish_lines(lines: list[str], settings: Settings, *, batch: int = 500, progress=None, task=None) -> int:
    """Publish raw event lines to Kafka; returns how many the broker acknowledged."""
    publisher = Publisher(settings, client_id="crm-replay")
    try:
        for start in range(0, len(lines), batch):
            chunk = lines[start:start + batch]
            publisher.send([Outgoing(topic_for(line, settings), line.encode()) for line in chunk])
            if progress is not None:
                progress.advance(task, len(chunk))
    finally:
        publisher.close()
    return len(lines)


def post_lines(lines: list[str], url: str, key: str, *, batch: int = 500, progress=None, task=None) -> dict:
    """Post event lines to ``POST /v1/events`` in batches; returns accepted and rejected counts."""
    totals = {"accepted": 0, "rejected": 0}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        for start in range(0, len(lines), batch):
            chunk = []
            for line in lines[start:start + batch]:
                try:
                    chunk.append(json.loads(line))
                except ValueError:
                    totals["rejected"] += 1
            if chunk:
                body = _post_until_taken(client, chunk)
                totals["accepted"] += body.get("accepted", 0)
                totals["rejected"] += body.get("rejected", 0)
            if progress is not None:
                progress.advance(task, len(lines[start:start + batch]))
    return totals


def _post_until_taken(client: httpx.Client, chunk: list, attempts: int = 20) -> dict:
    # 503 (the broker did not acknowledge) and 429 mean none of the chunk was taken: send it again after
    # the time the service asks for; the consumer ignores an event it sees twice.
    for _ in range(attempts):
        response = client.post("/v1/events", json=chunk)
        if response.status_code not in (429, 503):
            return response.json()
        time.sleep(min(30.0, float(response.headers.get("Retry-After", "1"))))
    raise RuntimeError(f"POST /v1/events still answers {response.status_code} after {attempts} attempts")


def replay_file(path: Path, settings: Settings, *, via_http: bool, batch: int) -> None:
    """Replay a file with a progress bar."""
    from crm.platform import dev_key

    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    with Progress() as progress:
        task = progress.add_task(f"replaying {path.name}", total=len(lines))
        if via_http:
            totals = post_lines(lines, f"http://{settings.api_host}:{settings.identity_port}", dev_key(settings),
                                batch=batch, progress=progress, task=task)
            progress.console.print(f"accepted {totals['accepted']}, rejected {totals['rejected']}")
        else:
            n = publish_lines(lines, settings, batch=batch, progress=progress, task=task)
            progress.console.print(f"published {n} events to {settings.kafka_bootstrap}")
