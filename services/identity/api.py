"""Identity's HTTP routes: ingestion, lookup, the single customer view, timeline, merges, conflicts."""

# No ``from __future__ import annotations``: the routes' Annotated dependencies are local to router(),
# and FastAPI can only resolve annotations that are evaluated where the route is defined.

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordRequestForm

from services.identity import views
from services.identity.handlers import Deps, commands, corrections, privacy, queries
from services.identity.schemas import (
    AssignmentRead,
    AuditPage,
    ConflictsPage,
    ConflictUpdate,
    ConsentCorrected,
    ConsentCorrection,
    CustomerRead,
    CustomersPage,
    ErasureAccepted,
    ErasureCreate,
    ErasureRead,
    ExportRead,
    IngestRead,
    ManagerAssign,
    MergeCreate,
    MergeDone,
    MergesPage,
    OwnerAssign,
    PhoneChange,
    PhoneChanged,
    ProfileCorrected,
    ProfileCorrection,
    StoresPage,
    TimelinePage,
    TokenRead,
    UnmergeCreate,
    UnmergeRead,
)
from shared.access import masking
from shared.access.audit import AuditQuery
from shared.access.http import Reason, Reveal, check_reveal
from shared.access.signin import sign_in, staff_directory
from shared.access.stores import StoreRegistry, registry_for
from shared.access.visibility import Seeing
from shared.clock import iso_utc
from shared.contract.events import IDENTIFIER_TYPES, Identity
from shared.http.api import Caller, caller_dep, errors
from shared.http.bounds import MAX_ID, Cursor, Offset, decode_cursor
from shared.http.errors import Conflict, Forbidden, InvalidInput

_EVENT = {"type": "object", "description": "a CloudEvent 1.0 in structured mode (see the README)"}

# A consent purpose staff may correct (shared.contract.events.CONSENT_PURPOSES).
Purpose = Literal["sms", "wechat", "email", "mail", "call"]


def _events_body(max_batch: int) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"anyOf": [
        _EVENT, {"type": "array", "items": _EVENT, "minItems": 1, "maxItems": max_batch}]}}}}


# 401/403/413/415/429 and the Error schema are declared for every route in shared/http/docs.py.
_INGEST_RESPONSES: dict[int | str, dict[str, Any]] = {
    207: {"description": "some events accepted, the others rejected with their index and reasons",
          "model": IngestRead},
    422: {"description": "no event accepted (each rejected with its index and reasons), or a body that "
                         "is not JSON, or an empty or too large batch", "model": IngestRead},
    503: {"description": "the broker did not acknowledge the events in time, or too many batches are in "
                         "flight; none was confirmed: send the same events again (same ids) after Retry-After "
                         "seconds, duplicates are ignored"},
}


def _body_items(raw: bytes, max_batch: int) -> list[Any]:
    """The posted events; a body that is not JSON at all is one error, a bad event is judged alone."""
    try:
        body = json.loads(raw)
    except RecursionError:
        raise InvalidInput("invalid_request", "the body nests too deeply to be read") from None
    except ValueError:
        raise InvalidInput("invalid_request", "the body is not valid JSON") from None
    items = body if isinstance(body, list) else [body]
    if not items:
        raise InvalidInput("empty_batch", "send at least one event")
    if len(items) > max_batch:
        raise InvalidInput("batch_too_large", f"send at most {max_batch} events per request")
    return items


def _ident(name: str):
    # As long as an event may carry it: a longer one cannot be anyone's, and the model would refuse it with a 500.
    bound = next(m.max_length for m in Identity.model_fields[name].metadata if hasattr(m, "max_length"))
    return Query(None, max_length=bound)


def router(deps: Deps) -> APIRouter:
    """The identity routes over ``deps``: handlers for what changes, queries for what is read."""
    r = APIRouter()
    DepsDep = Annotated[Deps, Depends(lambda: deps)]
    Reader = Annotated[Caller, caller_dep("reader")]
    Operator = Annotated[Caller, caller_dep("operator")]
    Admin = Annotated[Caller, caller_dep("admin")]

    def audit(caller: Caller, **act: Any) -> None:
        # Identity keeps the audit log itself: its entries go straight into its store.
        commands.audit(caller, deps=deps, **act)
    max_batch = deps.config.ingest_max_batch
    Registry = Annotated[StoreRegistry, Depends(lambda: registry_for(deps.settings.stores_file))]
    SignInForm = Annotated[OAuth2PasswordRequestForm, Depends()]

    @r.post("/events", response_model=IngestRead, status_code=202, tags=["ingestion"],
            responses=_INGEST_RESPONSES, openapi_extra={"requestBody": _events_body(max_batch)})
    async def post_events(request: Request, deps: DepsDep, caller: Operator, seeing: Seeing) -> JSONResponse:
        """Publish channel events to their topics; each is accepted or rejected with reasons.

        The body is read here, not by FastAPI, so that the key is checked first and one event that
        cannot be read (a lone surrogate, deep nesting, a huge field) is rejected alone.
        """
        # A scoped key could post purchases that move another store's customer into its own scope (issue 12):
        # ingestion is for company-wide keys (the channel systems).
        seeing.company_only("posting channel events")
        # The gate has checked key, role, size and JSON content type; parsing a large body stays off the loop.
        items = await run_in_threadpool(_body_items, await request.body(), max_batch)
        try:
            results = await run_in_threadpool(commands.ingest, items, deps=deps, publish=deps.publish)
        except commands.PublishUnavailable as exc:
            deps.runner().note_failure("ingest", exc.__cause__ or exc)
            raise
        accepted = sum(1 for x in results if x["status"] == "accepted")
        if accepted:
            deps.runner().note_success("ingest")
        status = 202 if accepted == len(results) else (207 if accepted else 422)
        page = IngestRead(accepted=accepted, rejected=len(results) - accepted, results=results)
        return JSONResponse(page.model_dump(exclude_none=True), status_code=status)

    @r.get("/customers/lookup", response_model=CustomerRead, tags=["customers"], responses=errors(404))
    def lookup(deps: DepsDep, caller: Reader, seeing: Seeing, reveal: bool = Reveal, reason: str | None = Reason,
               phone: str | None = _ident("phone"),
               wechat_openid: str | None = _ident("wechat_openid"),
               wechat_unionid: str | None = _ident("wechat_unionid"),
               member_id: str | None = _ident("member_id"), web_user_id: str | None = _ident("web_user_id"),
               email: str | None = _ident("email"), anonymous_id: str | None = _ident("anonymous_id")) -> CustomerRead:
        """The customer owning an identifier (a phone in any notation, or any other identifier)."""
        given = {k: v for k, v in dict(phone=phone, wechat_openid=wechat_openid, wechat_unionid=wechat_unionid,
                 member_id=member_id, web_user_id=web_user_id, email=email, anonymous_id=anonymous_id).items() if v}
        if len(given) != 1:
            raise InvalidInput("one_identifier", f"give exactly one of {', '.join(IDENTIFIER_TYPES)}")
        found = queries.lookup(given, deps=deps, reveal=check_reveal(caller, reveal), seeing=seeing)
        if reveal:
            audit(caller, action="reveal.customer", customer_id=found.customer_id, reason=reason)
        return found

    @r.get("/customers", response_model=CustomersPage, tags=["customers"])
    def list_customers(deps: DepsDep, caller: Reader, seeing: Seeing,
                       account_manager: str = Query(..., min_length=1, max_length=MAX_ID,
                                                    description="the staff id of an account manager"),
                       offset: Offset = 0, limit: int = Query(50, ge=1, le=200)) -> CustomersPage:
        """The customers assigned to an account manager (``PUT /v1/customers/{id}/account-manager``), newest
        assignment first, only those the caller may see; each as the single customer view, masked."""
        return queries.managed_customers(account_manager, deps=deps, seeing=seeing, offset=offset, limit=limit)

    @r.get("/customers/{customer_id}", response_model=CustomerRead, tags=["customers"])
    def get_customer(customer_id: str, deps: DepsDep, caller: Reader, seeing: Seeing, reveal: bool = Reveal,
                     reason: str | None = Reason) -> CustomerRead:
        """The single customer view; a merged-away id answers with the customer it is part of. Personal
        data is masked; an admin may ask ``reveal=true`` (recorded in the audit log)."""
        queries.visible_customer(customer_id, deps=deps, seeing=seeing)
        found = queries.view(customer_id, deps=deps, reveal=check_reveal(caller, reveal))
        if reveal:
            audit(caller, action="reveal.customer", customer_id=found.customer_id, reason=reason)
        return found

    @r.get("/customers/{customer_id}/timeline", response_model=TimelinePage, tags=["customers"])
    def get_timeline(customer_id: str, deps: DepsDep, caller: Reader, seeing: Seeing, cursor: Cursor = None,
                     limit: int = Query(50, ge=1, le=500), reveal: bool = Reveal,
                     reason: str | None = Reason) -> TimelinePage:
        """The customer's events across channels, newest first; their data masked unless an admin asks
        ``reveal=true`` (recorded in the audit log)."""
        queries.visible_customer(customer_id, deps=deps, seeing=seeing)
        page = queries.timeline(customer_id, deps=deps, cursor=cursor, limit=limit,
                                reveal=check_reveal(caller, reveal))
        if reveal:
            audit(caller, action="reveal.timeline", customer_id=page.customer_id, reason=reason)
        return page

    @r.get("/customers/{customer_id}/merges", response_model=MergesPage, tags=["merges"])
    def get_merges(customer_id: str, deps: DepsDep, caller: Reader, seeing: Seeing) -> MergesPage:
        """Every merge that made this customer, with what caused it."""
        queries.visible_customer(customer_id, deps=deps, seeing=seeing)
        return queries.merges(customer_id, deps=deps)

    @r.post("/customers/{customer_id}/unmerge", response_model=UnmergeRead, tags=["merges"])
    def post_unmerge(customer_id: str, body: UnmergeCreate, deps: DepsDep, caller: Operator,
                     seeing: Seeing, reason: str | None = Reason) -> UnmergeRead:
        """Undo a merge; both customers get back exactly what was theirs."""
        queries.visible_customer(customer_id, deps=deps, seeing=seeing)
        with deps.store.transaction():  # the audit entry commits with the change (identity keeps the log)
            done = commands.unmerge(customer_id, body.merge_id, by=caller.name, deps=deps)
            audit(caller, action="identity.unmerge", customer_id=done["survivor_id"], target=body.merge_id,
                  reason=reason)
        deps.relay(done.pop("outbox"))
        return UnmergeRead(**done)

    @r.get("/identity/conflicts", response_model=ConflictsPage, tags=["merges"])
    def get_conflicts(deps: DepsDep, caller: Reader, seeing: Seeing,
                      status: str | None = Query("open", max_length=MAX_ID),
                      customer_id: str | None = Query(None, max_length=MAX_ID), offset: Offset = 0,
                      limit: int = Query(50, ge=1, le=500)) -> ConflictsPage:
        """Events that would have joined two phone customers, for review."""
        items = queries.visible_conflicts(status or None, customer_id=customer_id, offset=offset, limit=limit,
                                          deps=deps, seeing=seeing)
        return ConflictsPage(items=items, offset=offset, limit=limit)

    @r.post("/identity/conflicts/{conflict_id}", status_code=204, tags=["merges"])
    def post_conflict(conflict_id: str, body: ConflictUpdate, deps: DepsDep, caller: Operator,
                      seeing: Seeing, reason: str | None = Reason) -> None:
        """Close a conflict as dismissed or resolved, with a note."""
        queries.check_conflict(conflict_id, deps=deps, seeing=seeing)
        with deps.store.transaction():
            commands.close_conflict(conflict_id, status=body.status, by=caller.name, note=body.note, deps=deps)
            audit(caller, action=f"identity.conflict.{body.status}", target=conflict_id, reason=reason or body.note)

    @r.get("/audit", response_model=AuditPage, tags=["audit"])
    def get_audit(deps: DepsDep, caller: Admin, seeing: Seeing, actor: str | None = Query(None, max_length=MAX_ID),
                  customer_id: str | None = Query(None, max_length=MAX_ID),
                  action: str | None = Query(None, max_length=MAX_ID),
                  since: datetime | None = Query(None, description="from this moment (inclusive, with a zone)"),
                  until: datetime | None = Query(None, description="before this moment (exclusive, with a zone)"),
                  cursor: Cursor = None, limit: int = Query(50, ge=1, le=500)) -> AuditPage:
        """The audit log of every service, newest first (admin): filter by person, customer, action, time."""
        seeing.company_only("the audit log")
        for moment in (since, until):
            if moment is not None and moment.tzinfo is None:
                raise InvalidInput("moment_needs_zone", "since and until need a timezone (…T09:00:00+08:00)")
        query = AuditQuery(actor=actor, customer_id=customer_id, action=action,
                           since=iso_utc(since) if since else None, until=iso_utc(until) if until else None)
        after = decode_cursor(cursor, (str, str))
        return views.audit_page(deps.store.audit_find(query, after=after, limit=limit + 1), limit=limit)

    @r.get("/identity/summary", tags=["operations"])
    def get_summary(deps: DepsDep, caller: Reader, seeing: Seeing) -> dict:
        """Counts ops watch: active customers, dead letters, open conflicts (a scoped caller: its own
        customers and conflicts; dead letters null)."""
        return queries.summary(deps=deps, seeing=seeing)

    @r.get("/stores", response_model=StoresPage, tags=["stores"])
    def get_stores(deps: DepsDep, caller: Reader, registry: Registry) -> StoresPage:
        """The stores registry (CRM_STORES_FILE), and the store ids events named that it lacks."""
        return queries.stores(deps=deps, registry=registry)

    @r.post("/auth/token", response_model=TokenRead, tags=["auth"],
            responses={401: {"description": "wrong user name or password (`invalid_credentials`)"}})
    def post_token(form: SignInForm, deps: DepsDep) -> TokenRead:
        """Sign a staff account in (OAuth2 password flow): a short-lived bearer token every service accepts."""
        token, ttl = sign_in(staff_directory(deps.settings.staff_file), deps.settings, form.username, form.password)
        return TokenRead(access_token=token, expires_in=ttl)

    # -- issue 12, erasure and export -------------------------------------------------------------

    @r.post("/customers/{customer_id}/erasure", response_model=ErasureAccepted, status_code=202, tags=["privacy"],
            responses=errors(404))
    def post_erasure(customer_id: str, body: ErasureCreate, deps: DepsDep, caller: Admin,
                     seeing: Seeing) -> ErasureAccepted:
        """Erase a customer in every service; identity's part is done when this answers, follow the rest
        at ``GET /v1/erasures/{erasure_id}``."""
        root = queries.visible_customer(customer_id, deps=deps, seeing=seeing)
        # The entry is written inside the erasure's transaction with the reason as the erasure keeps it: the
        # person's names masked (once the records are gone nothing could find them in the text any more).
        done = privacy.erase(customer_id, reason=body.reason, by=caller.name, deps=deps, audit=lambda erased: audit(
            caller, action="privacy.erasure", customer_id=root, target=erased.erasure_id, reason=erased.reason))
        return ErasureAccepted(erasure_id=done.erasure_id)

    @r.get("/erasures/{erasure_id}", response_model=ErasureRead, tags=["privacy"], responses=errors(404))
    def get_erasure(erasure_id: str, deps: DepsDep, caller: Admin, seeing: Seeing) -> ErasureRead:
        """An erasure's state: each service's confirmation, ``done`` once all four confirmed (ids only);
        company-wide admins only, like the audit log (the erased customer's store is gone with them)."""
        # A scoped admin gets the same 403 for every id, known or not: nothing about erasures to probe.
        seeing.company_only("following an erasure")
        return ErasureRead(**privacy.erasure_status(erasure_id, deps=deps))

    @r.get("/customers/{customer_id}/export", response_model=ExportRead, tags=["privacy"],
           responses=errors(404, 503))
    def get_export(customer_id: str, request: Request, deps: DepsDep, caller: Admin, seeing: Seeing,
                   reason: str | None = Reason) -> ExportRead:
        """Everything the platform holds of a customer, gathered from the four services (503 naming a
        service that does not answer); recorded in the audit log."""
        root = queries.visible_customer(customer_id, deps=deps, seeing=seeing)
        done = ExportRead(**privacy.export(customer_id, authorization=request.headers.get("authorization", ""),
                                           deps=deps))
        audit(caller, action="privacy.export", customer_id=root, reason=reason)
        return done

    # -- issue 14, staff corrections: each with a reason, audited in its transaction, 404 outside the scope ----

    @r.post("/customers/{customer_id}/merge", response_model=MergeDone, tags=["corrections"],
            responses=errors(404, 409))
    def post_merge(customer_id: str, body: MergeCreate, deps: DepsDep, caller: Operator,
                   seeing: Seeing) -> MergeDone:
        """Merge another customer into this one (a conflict review found them to be one person); every service
        follows as for any merge. Undo: ``POST /v1/customers/{survivor_id}/unmerge`` with the ``merge_id``."""
        queries.visible_customer(customer_id, deps=deps, seeing=seeing)
        queries.visible_customer(body.customer_id, deps=deps, seeing=seeing)
        if body.conflict_id is not None:
            queries.check_conflict(body.conflict_id, deps=deps, seeing=seeing)
        with deps.store.transaction():
            done = corrections.merge(customer_id, other_id=body.customer_id, by=caller.name, deps=deps,
                                     conflict_id=body.conflict_id)
            audit(caller, action="identity.merge", customer_id=done["survivor_id"], target=done["merge_id"],
                  reason=body.reason)
        deps.relay(done.pop("outbox"))
        return MergeDone(**done)

    @r.put("/customers/{customer_id}/phone", response_model=PhoneChanged, tags=["corrections"],
           responses=errors(404, 409))
    def put_phone(customer_id: str, body: PhoneChange, deps: DepsDep, caller: Operator,
                  seeing: Seeing) -> PhoneChanged:
        """Change a customer's phone number: the old one stays in the identifier history marked replaced and
        links nothing any more (an event carrying it is someone else's); 409 when another customer holds it."""
        queries.visible_customer(customer_id, deps=deps, seeing=seeing)
        try:
            with deps.store.transaction():
                done = corrections.change_phone(customer_id, phone=body.phone, by=caller.name, deps=deps,
                                                seeing=seeing)
                audit(caller, action="identity.phone.change", customer_id=done["customer_id"],
                      target=done["change_id"], reason=body.reason)
        except Conflict as exc:
            if exc.code == "phone_in_use":
                # The refusal tells the caller that the number is somebody's, perhaps a customer outside their
                # scope: each one is audited (never the number), so probing numbers this way shows in the log.
                with deps.store.transaction():
                    audit(caller, action="identity.phone.change.refused", customer_id=customer_id,
                          target="phone_in_use", reason=body.reason)
            raise
        return PhoneChanged(**done)

    @r.patch("/customers/{customer_id}/profile", response_model=ProfileCorrected, tags=["corrections"],
             responses=errors(404, 409))
    def patch_profile(customer_id: str, body: ProfileCorrection, deps: DepsDep, caller: Operator,
                      seeing: Seeing) -> ProfileCorrected:
        """Correct profile fields: each shows from the ``staff`` source (who, when) until a channel reports a
        value dated after the correction."""
        queries.visible_customer(customer_id, deps=deps, seeing=seeing)
        given = body.model_dump(exclude={"reason", "attributes"}, exclude_none=True, mode="json")
        given |= {f"attributes.{k}": v for k, v in body.attributes.items()}
        with deps.store.transaction():
            done = corrections.correct_profile(customer_id, fields=given, by=caller.name, deps=deps)
            # The field names only: their values are the customer's personal data (a custom attribute's
            # name is staff's free text, so it is scrubbed as a reason is).
            audit(caller, action="identity.profile.correct", customer_id=done["customer_id"],
                  target=masking.scrub(",".join(done["fields"])), reason=body.reason)
        deps.relay(done.pop("outbox"))
        return ProfileCorrected(**done)

    @r.put("/customers/{customer_id}/consents/{purpose}", response_model=ConsentCorrected, tags=["corrections"],
           responses=errors(404, 409))
    def put_consent(customer_id: str, purpose: Purpose, body: ConsentCorrection, deps: DepsDep, caller: Operator,
                    seeing: Seeing) -> ConsentCorrected:
        """Record a consent the customer gave or withdrew in front of staff: it decides (campaigns' consent
        checks included) until a channel reports a newer one."""
        queries.visible_customer(customer_id, deps=deps, seeing=seeing)
        with deps.store.transaction():
            done = corrections.correct_consent(customer_id, purpose=purpose, granted=body.granted, by=caller.name,
                                               deps=deps)
            # The purpose only: whether it was granted is the customer's own.
            audit(caller, action="identity.consent.correct", customer_id=done["customer_id"],
                  target=f"consent.{purpose}", reason=body.reason)
        deps.relay(done.pop("outbox"))
        return ConsentCorrected(customer_id=done["customer_id"], correction_id=done["correction_id"],
                                purpose=purpose, granted=body.granted, at=done["at"])

    @r.put("/customers/{customer_id}/owner", response_model=AssignmentRead, tags=["corrections"],
           responses=errors(404))
    def put_owner(customer_id: str, body: OwnerAssign, deps: DepsDep, caller: Operator, seeing: Seeing,
                  registry: Registry) -> AssignmentRead:
        """Assign or transfer a customer to a store: its owning store (who may see it) from now on, announced to
        every service; ``store_id: null`` gives back the store computed from purchases."""
        queries.visible_customer(customer_id, deps=deps, seeing=seeing)
        if body.store_id is not None:
            known = registry.known()
            if known and body.store_id not in known:
                raise InvalidInput("unknown_store", "store_id: no such store in the stores registry",
                                   details=[{"loc": "body.store_id", "msg": "not in the stores registry"}])
            if not seeing.company_wide and not seeing.sees(body.store_id):
                raise Forbidden("store_out_of_scope", "a customer can be assigned only to a store your key sees")
        with deps.store.transaction():
            root, outbox = corrections.assign(customer_id, kind="store", value=body.store_id, by=caller.name,
                                              deps=deps)
            audit(caller, action="identity.owner.assign" if body.store_id else "identity.owner.unassign",
                  customer_id=root, target=body.store_id, reason=body.reason)
        deps.relay(outbox)
        return _assignment(root)

    @r.put("/customers/{customer_id}/account-manager", response_model=AssignmentRead, tags=["corrections"],
           responses=errors(404))
    def put_account_manager(customer_id: str, body: ManagerAssign, deps: DepsDep, caller: Operator,
                            seeing: Seeing) -> AssignmentRead:
        """Assign a customer to an account manager (a staff id, shown in the view); ``null`` ends it."""
        queries.visible_customer(customer_id, deps=deps, seeing=seeing)
        with deps.store.transaction():
            root, outbox = corrections.assign(customer_id, kind="manager", value=body.account_manager,
                                              by=caller.name, deps=deps)
            audit(caller, action="identity.manager.assign" if body.account_manager else "identity.manager.unassign",
                  customer_id=root, target=body.account_manager, reason=body.reason)
        deps.relay(outbox)
        return _assignment(root)

    def _assignment(root: str) -> AssignmentRead:
        view = queries.view(root, deps=deps, reveal=False)
        return AssignmentRead(customer_id=root, owner=view.owner, account_manager=view.account_manager)
    # -- issue 14, member import --------------------------------------------------------------------

    return r
