"""Campaigns: the list (paged, by status), a new campaign, a campaign's page with the audience builder and its
live preview (counts and exclusions), the moves (schedule, launch, pause…), and the results with the lift, its
95% interval and the daily new/returning converters as charts, breakdowns and the CSV downloads."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from services.console.i18n import N_
from services.console.web import ClientsDep, SessionDep, is_htmx, render, zone_of

router = APIRouter()
PAGE = 25
STATUSES = {"draft": N_("Draft"), "scheduled": N_("Scheduled"), "running": N_("Running"), "paused": N_("Paused"),
            "completed": N_("Completed"), "cancelled": N_("Cancelled")}
OBJECTIVES = {"awareness": N_("Awareness"), "product_launch": N_("Product launch"), "promotion": N_("Promotion"),
              "recruitment": N_("Recruitment"), "loyalty": N_("Loyalty"), "winback": N_("Win-back")}
CHANNELS = {"sms": N_("SMS"), "wechat": N_("WeChat"), "email": N_("E-mail"), "mail": N_("Mail"), "call": N_("Call")}
AGE_BANDS = ("<25", "25-34", "35-44", "45-54", "55+", "unknown")
EXCLUSIONS = {"no_consent": N_("No consent for the channel"), "opted_out": N_("Opted out"),
              "contact_cap": N_("Over the contact cap")}
BREAKDOWNS = {"tier": N_("Tier"), "age_band": N_("Age band"), "home_store": N_("Home store"),
              "purchases_before": N_("Purchases before"), "touches_before": N_("Touches before")}
# The moves each status allows (the API decides; these are the buttons offered), in the order shown.
MOVES = {"draft": ("launch", "schedule", "cancel"), "scheduled": ("launch", "unschedule", "pause", "cancel"),
         "running": ("pause", "complete", "cancel"), "paused": ("resume", "complete", "cancel"),
         "completed": (), "cancelled": ()}
MOVE_LABELS = {"launch": N_("Launch now"), "schedule": N_("Schedule"), "unschedule": N_("Back to draft"),
               "pause": N_("Pause"), "resume": N_("Resume"), "complete": N_("Complete"),
               "cancel": N_("Cancel campaign")}
# Moves that cannot be taken back ask first.
CONFIRM = {"launch": N_("Launch this campaign now? Its audience is frozen and the touches are sent."),
           "cancel": N_("Cancel this campaign? A launched campaign's bonus points are withdrawn.")}
# The audience's criteria as a launched campaign's page names them.
CRITERIA = {"tiers": N_("Tiers"), "age_bands": N_("Age bands"), "genders": N_("Genders"), "cities": N_("Cities"),
            "home_stores": N_("Home stores"), "categories": N_("Categories bought"),
            "recency_days": N_("Days since last purchase"), "frequency": N_("Number of purchases"),
            "spend": N_("Net spend (¥)"), "p_alive": N_("Probability still active (0–1)")}
LISTS = ("tiers", "genders", "cities", "home_stores", "categories")
RANGES = ("recency_days", "frequency", "spend", "p_alive")


def _words(value: str) -> list[str] | None:
    """A list typed as words separated by commas (either width) or spaces; None when empty."""
    items = [w.strip() for w in value.replace("，", ",").replace(" ", ",").split(",")]
    return [w for w in items if w] or None


def audience_of(form: FormData) -> dict[str, Any]:
    """The audience filter the builder's inputs describe (only the criteria given); the API validates it."""
    audience: dict[str, Any] = {}
    for name in LISTS:
        if words := _words(str(form.get(name) or "")):
            audience[name] = words
    if bands := [b for b in form.getlist("age_bands") if b in AGE_BANDS]:
        audience["age_bands"] = bands
    for name in RANGES:
        bounds = {k: str(form.get(f"{name}_{k}") or "").strip() for k in ("min", "max")}
        if any(bounds.values()):
            audience[name] = {k: v for k, v in bounds.items() if v}
    return audience


def _moment(value: str, zone) -> str | None:
    """A datetime-local input (the store's wall clock) as an aware ISO moment."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=zone).isoformat()
    except ValueError:
        return value  # the API's 422 names the field


def definition_of(form: FormData, zone) -> dict[str, Any]:
    """The new campaign the form describes (the API checks every field and names the one at fault)."""
    text = {k: str(v).strip() for k, v in form.items() if isinstance(v, str)}
    body: dict[str, Any] = {"name": text.get("name", ""), "objective": text.get("objective"),
                            "channel": text.get("channel"), "audience": audience_of(form),
                            "starts_at": _moment(text.get("starts_at", ""), zone),
                            "ends_at": _moment(text.get("ends_at", ""), zone),
                            "costs": {"fixed": text.get("cost_fixed") or "0", "per_touch": text.get("cost_per_touch")
                                      or "0"}}
    if text.get("attribution_window_days"):
        body["attribution_window_days"] = text["attribution_window_days"]
    if text.get("control_share"):
        try:
            body["control_share"] = str(float(text["control_share"]) / 100)
        except ValueError:
            body["control_share"] = text["control_share"]
    if text.get("bonus_multiplier"):
        body["bonus_multiplier"] = text["bonus_multiplier"]
    if text.get("offer"):
        body["offer"] = {"text": text["offer"]}
    return body


def _context(campaign: dict) -> dict[str, Any]:
    return {"c": campaign, "statuses": STATUSES, "objectives": OBJECTIVES, "channels": CHANNELS,
            "moves": MOVES.get(campaign["status"], ()), "move_labels": MOVE_LABELS, "confirm": CONFIRM,
            "exclusions": EXCLUSIONS, "age_bands": AGE_BANDS, "criteria": CRITERIA, "a": campaign.get("audience") or {}}


@router.get("/campaigns")
async def campaign_list(request: Request, session: SessionDep, clients: ClientsDep,
                        status: str | None = Query(None), offset: int = Query(0, ge=0)) -> Response:
    """The campaigns the person sees, newest first, by status, 25 a page."""
    status = status if status in STATUSES else None
    page = await clients.get("campaigns", "/v1/campaigns", token=session.token, status=status, offset=offset,
                             limit=PAGE)
    template = "campaigns/_list.html" if is_htmx(request) else "campaigns/list.html"
    return render(request, template, campaigns=page, status=status, statuses=STATUSES, channels=CHANNELS,
                  query=urlencode({"status": status} if status else {}))


@router.get("/campaigns/new")
async def new_campaign(request: Request, session: SessionDep) -> Response:
    """The form for a new campaign (a draft), its start and end in the store's wall clock."""
    now = datetime.now(zone_of(request)).replace(second=0, microsecond=0)
    return render(request, "campaigns/new.html", statuses=STATUSES, objectives=OBJECTIVES, channels=CHANNELS,
                  age_bands=AGE_BANDS, a={}, starts=(now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
                  ends=(now + timedelta(days=15)).strftime("%Y-%m-%dT%H:%M"))


@router.post("/campaigns/new")
async def create_campaign(request: Request, session: SessionDep, clients: ClientsDep) -> Response:
    """Define the draft, then open its page (where the audience's preview is)."""
    body = definition_of(await request.form(), zone_of(request))
    created = await clients.post("campaigns", "/v1/campaigns", token=session.token, body=body)
    return Response(status_code=204, headers={"HX-Redirect": f"/campaigns/{created['campaign_id']}"})


@router.get("/campaigns/{campaign_id}")
async def campaign_page(request: Request, campaign_id: str, session: SessionDep, clients: ClientsDep) -> Response:
    """A campaign: its definition, status and moves; a draft's audience builder with the live preview."""
    campaign = await clients.get("campaigns", f"/v1/campaigns/{campaign_id}", token=session.token)
    preview = None
    if campaign["status"] in ("draft", "scheduled"):
        preview = await clients.optional("campaigns", f"/v1/campaigns/{campaign_id}/preview", token=session.token)
    return render(request, "campaigns/view.html", preview=preview, **_context(campaign))


@router.post("/campaigns/{campaign_id}/audience")
async def change_audience(request: Request, campaign_id: str, session: SessionDep, clients: ClientsDep) -> Response:
    """Save a draft's audience as the builder now says, and answer with the preview of it."""
    audience = audience_of(await request.form())
    await clients.call("campaigns", "PATCH", f"/v1/campaigns/{campaign_id}", token=session.token,
                       json={"audience": audience})
    preview = await clients.get("campaigns", f"/v1/campaigns/{campaign_id}/preview", token=session.token)
    return render(request, "campaigns/_preview.html", preview=preview, exclusions=EXCLUSIONS)


@router.post("/campaigns/{campaign_id}/{action}")
async def move(request: Request, campaign_id: str, action: str, session: SessionDep,
               clients: ClientsDep) -> Response:
    """Launch, schedule, pause, resume, complete or cancel; answers with the campaign's part of the page."""
    if action not in MOVE_LABELS:
        return render(request, "errors/not_found.html", 404)
    campaign = await clients.post("campaigns", f"/v1/campaigns/{campaign_id}/{action}", token=session.token)
    preview = None
    if campaign["status"] in ("draft", "scheduled"):
        preview = await clients.optional("campaigns", f"/v1/campaigns/{campaign_id}/preview", token=session.token)
    return render(request, "campaigns/_campaign.html", preview=preview, **_context(campaign))


def _lift_chart(overall: dict) -> str:
    lift = overall.get("lift")
    if not lift:
        return ""
    return json.dumps({"absolute": lift["absolute"], "low": lift["ci_low"], "high": lift["ci_high"],
                       "treatment": overall["treatment"]["conversion_rate"],
                       "control": overall["control"]["conversion_rate"]})


def _daily_chart(daily: list[dict]) -> str:
    days = sorted({d["day"] for d in daily})
    series: dict[str, list[int]] = {}
    for group in ("treatment", "control"):
        for kind in ("new", "returning"):
            by_day = {d["day"]: d[f"{kind}_converters"] for d in daily if d["group"] == group}
            series[f"{group}_{kind}"] = [by_day.get(day, 0) for day in days]
    return json.dumps({"days": days, **series})


@router.get("/campaigns/{campaign_id}/results")
async def results(request: Request, campaign_id: str, session: SessionDep, clients: ClientsDep,
                  by: str = Query("tier")) -> Response:
    """The measured effect: groups, lift with its 95% interval (chart), daily converters (chart), breakdowns."""
    campaign = await clients.get("campaigns", f"/v1/campaigns/{campaign_id}", token=session.token)
    found = await clients.get("campaigns", f"/v1/campaigns/{campaign_id}/results", token=session.token)
    by = by if by in BREAKDOWNS else "tier"
    return render(request, "campaigns/results.html", c=campaign, r=found, by=by, breakdowns=BREAKDOWNS,
                  statuses=STATUSES, lift_chart=_lift_chart(found["overall"]), daily_chart=_daily_chart(found["daily"]))


@router.get("/campaigns/{campaign_id}/{name}.csv")
async def csv(request: Request, campaign_id: str, name: str, session: SessionDep, clients: ClientsDep) -> Response:
    """The API's results.csv or daily.csv, downloaded through the console (the browser holds no token)."""
    if name not in ("results", "daily"):
        return render(request, "errors/not_found.html", 404)
    text = await clients.call("campaigns", "GET", f"/v1/campaigns/{campaign_id}/{name}.csv", token=session.token,
                              as_text=True)
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{campaign_id}-{name}.csv"'})
