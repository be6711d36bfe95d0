"""``crm demo``: a generated multi-channel sample through the API, a campaign launched over it, then a few
single customer views with every service's part."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import typer

from crm.platform import available_services, dev_key
from crm.replay import post_lines
from crm.scenario import generate
from shared.settings import Settings


def run_demo(settings: Settings, *, people: int = 200) -> None:
    """Post the sample, launch a demo campaign, wait for the services, and print three customers."""
    key = dev_key(settings)
    headers = {"Authorization": f"Bearer {key}"}
    url = f"http://{settings.api_host}:{settings.identity_port}"
    scenario = generate(people, malformed=10, seed=int(time.time()) % 100_000)
    lines = [e if isinstance(e, str) else json.dumps(e) for e in scenario.events]
    totals = post_lines(lines, url, key)
    typer.echo(f"posted {len(lines)} events: {totals['accepted']} accepted, {totals['rejected']} rejected "
               f"(the sample includes {scenario.malformed} malformed and {scenario.duplicates} duplicate events)")
    services = available_services()
    phones = [f"+86{p.digits}" for p in scenario.people[:3]]
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        views = [_resolved(client, phone, wait_for_loyalty="loyalty" in services) for phone in phones]
        if "campaigns" in services:
            _launch_campaign(settings, headers)
            # Customers without SMS consent are excluded; wait until the members' parts arrive.
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                views = [_resolved(client, phone) for phone in phones]
                if any(v and v.get("campaigns") for v in views):
                    break
                time.sleep(0.5)
    for view in views:
        if view is not None:
            _show(view, url)


def _resolved(client: httpx.Client, phone: str, *, wait_for_loyalty: bool = False,
              timeout_s: float = 60) -> dict | None:
    """A customer's view once identity (and the other services' parts, which trail by a moment) hold it."""
    deadline = time.monotonic() + timeout_s
    while True:
        r = client.get("/v1/customers/lookup", params={"phone": phone})
        view = r.json() if r.status_code == 200 else None
        ready = view is not None and (not wait_for_loyalty or view.get("loyalty"))
        if ready or time.monotonic() > deadline:
            if view is None:
                typer.echo(f"customer not resolved yet (HTTP {r.status_code}); try again in a moment")
            return view
        time.sleep(0.3)


def _launch_campaign(settings: Settings, headers: dict) -> None:
    """A win-back SMS with double points for 30 days, 10% held out as a control group."""
    now = datetime.now(UTC)
    body = {"name": "Demo: welcome back, double points", "objective": "winback", "channel": "sms",
            "offer": {"text": "Double points on your next visit"}, "bonus_multiplier": "2.00",
            "starts_at": now.isoformat(), "ends_at": (now + timedelta(days=30)).isoformat(),
            "control_share": "0.10", "costs": {"fixed": "500.00", "per_touch": "0.05"}}
    base = f"http://{settings.api_host}:{settings.campaigns_port}/v1/campaigns"
    with httpx.Client(headers=headers, timeout=60) as client:
        campaign = client.post(base, json=body).raise_for_status().json()
        launched = client.post(f"{base}/{campaign['campaign_id']}/launch").raise_for_status().json()
    launch = launched.get("launch") or {}
    typer.echo(f"\nlaunched campaign {campaign['campaign_id']} ({body['name']}): {launch.get('members')} members, "
               f"{launch.get('treatment')} treatment, {launch.get('control')} control, excluded "
               f"{json.dumps(launch.get('excluded', {}))}")
    typer.echo(f"  results: {base}/{campaign['campaign_id']}/results")


def _show(view: dict, url: str) -> None:
    # The view masks the phone for every caller (an admin too, unless it asks to reveal).
    typer.echo(f"\n{view['customer_id']}  phone {view['phone']}  "
               f"merged from {len(view['merged_from'])} other record(s)")
    typer.echo(f"  identifiers: {', '.join(i['type'] for i in view['identifiers'])}")
    typer.echo(f"  stats: {json.dumps(view['stats'], ensure_ascii=False)}")
    loyalty = view.get("loyalty")
    if loyalty:
        expiring = loyalty.get("expiring") or []
        first = expiring[0] if expiring else None
        soonest = f", next expiry {first['points']} points on {first['expires_at'][:10]}" if first else ""
        typer.echo(f"  loyalty: {loyalty['points_balance']} points, tier {loyalty.get('tier') or '-'}{soonest}")
    alerts = view.get("alerts", {}).get("open", [])
    shown = ", ".join(f"{a['type']} ({a['severity']})" for a in alerts) or "none open"
    typer.echo(f"  alerts: {shown}")
    campaigns = ", ".join(f"{c['campaign_id']} {c['group']}" for c in view.get("campaigns", [])) or "none"
    typer.echo(f"  campaigns: {campaigns}")
    typer.echo(f"  timeline: {url}/v1/customers/{view['customer_id']}/timeline")
