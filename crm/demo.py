"""``crm demo``: a generated multi-channel sample through the API, then a few single customer views."""

from __future__ import annotations

import json
import time

import httpx
import typer

from crm.platform import dev_key
from crm.replay import post_lines
from crm.scenario import generate
from shared.settings import Settings


def run_demo(settings: Settings, *, people: int = 200) -> None:
    """Post the sample, wait for identity to resolve it, and print three customers."""
    key = dev_key(settings)
    url = f"http://{settings.api_host}:{settings.identity_port}"
    scenario = generate(people, malformed=10, seed=int(time.time()) % 100_000)
    lines = [e if isinstance(e, str) else json.dumps(e) for e in scenario.events]
    totals = post_lines(lines, url, key)
    typer.echo(f"posted {len(lines)} events: {totals['accepted']} accepted, {totals['rejected']} rejected "
               f"(the sample includes {scenario.malformed} malformed and {scenario.duplicates} duplicate events)")
    headers = {"Authorization": f"Bearer {key}"}
    phones = [f"+86{p.digits}" for p in scenario.people[:3]]
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        deadline = time.monotonic() + 60
        for phone in phones:
            while True:
                r = client.get("/v1/customers/lookup", params={"phone": phone})
                if r.status_code == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            if r.status_code != 200:
                typer.echo(f"customer not resolved yet (HTTP {r.status_code}); try again in a moment")
                continue
            view = r.json()
            typer.echo(f"\n{view['customer_id']}  phone {view['phone']}  merged from {len(view['merged_from'])}")
            typer.echo(f"  identifiers: {', '.join(i['type'] for i in view['identifiers'])}")
            typer.echo(f"  stats: {json.dumps(view['stats'], ensure_ascii=False)}")
            typer.echo(f"  timeline: {url}/v1/customers/{view['customer_id']}/timeline")
