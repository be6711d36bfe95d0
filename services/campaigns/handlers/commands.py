"""Commands behind the routes: defining campaigns and moving them through their states (launching is in
``launch``, reading results in ``reports``)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from services.campaigns.domain.definition import Definition, confined_to, next_status
from services.campaigns.handlers import Deps
from services.campaigns.handlers.outbox import Leased, lease, outbox_message
from services.campaigns.store import CampaignRow
from shared.access.visibility import Visibility
from shared.clock import iso_utc
from shared.contract import topics
from shared.contract.messages import CampaignBonusGranted
from shared.http.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.observability.trace_context import inject_headers
from shared.storage.base import OutboxMessage

# Issue 12: who may define, launch and measure which campaign is decided here, for every route. A company-wide
# key: any campaign. A region-scoped key: the campaigns whose audience is confined to its region (its
# ``audience.home_stores`` given, each in the region); any other campaign answers it as an unknown id, so a
# region cannot probe another's campaigns. A store-scoped key: none (403); it still reads definitions, its
# own store's audience members and the results over those members (``measured_over``).
EVERYONE = Visibility()
SCOPED_OUT = "defining, launching or measuring a campaign needs a company-wide or region-scoped key"


def get(campaign_id: str, *, deps: Deps, seeing: Visibility = EVERYONE) -> CampaignRow:
    """One campaign, or NotFound; one the caller does not see (:func:`sees`) answers the same NotFound."""
    row = deps.store.campaign(campaign_id)
    if row is None or not sees(row, seeing=seeing):
        raise NotFound("campaign_not_found", "no campaign with that id")
    return row


def definition_of(row: CampaignRow) -> Definition:
    """The stored definition as its model."""
    return Definition.model_validate(row.definition)


def sees(row: CampaignRow, *, seeing: Visibility) -> bool:
    """Whether the caller sees a campaign: a region-scoped one only those confined to its region."""
    if seeing.scope.kind != "region":
        return True
    return confined_to(definition_of(row), seeing.stores or frozenset())[0]


def runs(campaign_id: str, *, seeing: Visibility, deps: Deps) -> CampaignRow:
    """The campaign, if the caller may edit, move, preview, launch and measure it: 403 to a store-scoped
    key (before the id is looked at, as for every id), NotFound for one it does not see."""
    if seeing.scope.kind == "store":
        raise Forbidden("forbidden_scope", SCOPED_OUT)
    return get(campaign_id, deps=deps, seeing=seeing)


def measured_over(campaign_id: str, *, seeing: Visibility, deps: Deps) -> frozenset[str] | None:
    """Whose results the caller reads: None, the whole campaign (company-wide, or region-scoped for a campaign
    confined to its region, else NotFound as :func:`runs`); for a store-scoped key its stores, whose members'
    results it reads (results are figures over customers, filtered by scope like every list)."""
    if seeing.scope.kind == "store":
        get(campaign_id, deps=deps, seeing=seeing)
        return seeing.stores
    runs(campaign_id, seeing=seeing, deps=deps)
    return None


def may_define(definition: Definition, *, seeing: Visibility) -> None:
    """Refuse (403 forbidden_scope) a definition beyond the caller's scope, naming the home stores outside
    a region-scoped key's region (store ids only)."""
    if seeing.company_wide:
        return
    if seeing.scope.kind != "region":
        raise Forbidden("forbidden_scope", SCOPED_OUT)
    confined, outside = confined_to(definition, seeing.stores or frozenset())
    if outside:
        raise Forbidden("forbidden_scope", f"audience.home_stores outside region {seeing.scope.value}: "
                        f"{', '.join(outside)}", details={"stores_outside": outside})
    if not confined:
        raise Forbidden("forbidden_scope", f"a key scoped to region {seeing.scope.value} must give "
                        "audience.home_stores, every one in its region")


def listed(*, status: str | None, offset: int, limit: int, seeing: Visibility,
           deps: Deps) -> tuple[list[CampaignRow], int]:
    """One page of the campaigns the caller sees, newest first, and their total."""
    store = deps.store
    if seeing.scope.kind != "region":
        return store.campaigns(status=status, offset=offset, limit=limit), store.campaign_count(status=status)
    # Confinement depends on the stores registry, which changes without the campaigns changing, so a region's
    # list is filtered here over every campaign (hundreds, not customers) rather than in the store query.
    every = store.campaigns(status=status, offset=0, limit=store.campaign_count(status=status))
    mine = [row for row in every if sees(row, seeing=seeing)]
    return mine[offset:offset + limit], len(mine)


def _hashed(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create(definition: Definition, *, by: str, idempotency_key: str | None, deps: Deps,
           seeing: Visibility = EVERYONE) -> tuple[CampaignRow, bool]:
    """Create a draft; with an idempotency key, the same request again returns the same campaign."""
    may_define(definition, seeing=seeing)
    stored = definition.model_dump(mode="json")
    key = _hashed(idempotency_key) if idempotency_key else None
    now = iso_utc(deps.clock())
    with deps.store.transaction():
        if key is not None and (held := deps.store.campaign_by_key(key)) is not None:
            if held.definition != stored:
                raise Conflict("idempotency_key_reused", "this Idempotency-Key was used for a different campaign")
            return held, False
        campaign_id = "cmp_" + (key[:20] if key else uuid.uuid4().hex[:20])
        row = CampaignRow(id=campaign_id, definition=stored, status="draft", created_at=now, updated_at=now,
                          starts_at=iso_utc(definition.starts_at), ends_at=iso_utc(definition.ends_at),
                          idempotency_key=key, created_by=by)
        deps.store.add_campaign(row)
    return row, True


def edit(campaign_id: str, *, changes: dict[str, Any], deps: Deps, seeing: Visibility = EVERYONE) -> CampaignRow:
    """Change fields of a draft; the result is validated as a whole, errors name their fields."""
    with deps.store.transaction():
        row = runs(campaign_id, seeing=seeing, deps=deps)
        if row.status != "draft":
            raise Conflict("not_a_draft", f"only drafts can be edited; this campaign is {row.status}")
        try:
            definition = Definition.model_validate({**row.definition, **changes})
        except ValidationError as exc:
            details = [{"loc": ".".join(["body", *(str(p) for p in e["loc"])]), "msg": e["msg"]}
                       for e in exc.errors(include_input=False, include_url=False)]
            raise InvalidInput("invalid_request", "the request is not valid", details=details) from None
        may_define(definition, seeing=seeing)  # an edit must not take the audience out of the caller's region
        now = iso_utc(deps.clock())
        deps.store.update_campaign(campaign_id, expect_status="draft", definition=definition.model_dump(mode="json"),
                                   starts_at=iso_utc(definition.starts_at), ends_at=iso_utc(definition.ends_at),
                                   updated_at=now, last_error=None)
        return get(campaign_id, deps=deps)


def move(campaign_id: str, *, action: str, deps: Deps,
         seeing: Visibility = EVERYONE) -> tuple[CampaignRow, Leased]:
    """Schedule, unschedule, pause, resume, complete or cancel; returns the campaign and what to publish."""
    now = deps.clock()
    with deps.store.transaction():
        row = runs(campaign_id, seeing=seeing, deps=deps)
        target = next_status(row.status, action, paused_from=row.paused_from, launched=row.launched_at is not None)
        definition = definition_of(row)
        if action == "schedule" and definition.ends_at <= now:
            raise Conflict("campaign_ended", "ends_at has passed; edit the dates before scheduling")
        changes: dict[str, Any] = {"status": target, "updated_at": iso_utc(now)}
        if action == "pause":
            changes["paused_from"] = row.status
        elif action == "resume":
            changes["paused_from"] = None
        if not deps.store.update_campaign(campaign_id, expect_status=row.status, **changes):
            raise Conflict("concurrent_change", "the campaign changed meanwhile; try again")
        out: list[OutboxMessage] = []
        granted = row.launched_at is not None and definition.bonus_multiplier is not None
        if action == "cancel" and granted and now < definition.ends_at:
            out = withdraw_bonus(campaign_id, definition=definition, deps=deps, at=now)
        return get(campaign_id, deps=deps), lease(out, deps=deps)


def grant_id(campaign_id: str, customer_id: str) -> str:
    """The bonus grant of one treatment member (the same on every launch and replay)."""
    return "g_" + hashlib.sha256(f"grant\x00{campaign_id}\x00{customer_id}".encode()).hexdigest()[:24]


def bonus_message(campaign_id: str, customer_id: str, definition: Definition, *, active: bool, at: datetime,
                  deps: Deps, headers: list) -> OutboxMessage:
    """A bonus grant (or its withdrawal) for loyalty."""
    body = CampaignBonusGranted(grant_id=grant_id(campaign_id, customer_id), campaign_id=campaign_id,
                                customer_id=customer_id, multiplier=definition.bonus_multiplier,
                                starts_at=definition.starts_at, ends_at=definition.ends_at, active=active, at=at)
    return outbox_message(deps, topics.CAMPAIGN_EVENTS, customer_id, body, headers)


def withdraw_bonus(campaign_id: str, *, definition: Definition, deps: Deps, at: datetime) -> list[OutboxMessage]:
    """Withdraw every treatment member's bonus (the members as launched: the grants loyalty holds)."""
    headers = inject_headers()
    return [bonus_message(campaign_id, m.member_id, definition, active=False, at=at, deps=deps, headers=headers)
            for m in deps.store.members(campaign_id, group="treatment")]

