"""Loyalty use cases behind the read routes: an account, its ledger, statements, tier history and rules."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from services.loyalty.domain.account import settle
from services.loyalty.domain.calendar import add_months, month_key, month_start, parse_month
from services.loyalty.domain.model import Facts
from services.loyalty.domain.statements import statement
from services.loyalty.domain.tiers import timeline
from services.loyalty.handlers import Deps, corrections
from services.loyalty.handlers.accounts import load_facts
from services.loyalty.handlers.commands import account_root, redemption_body
from shared.access.visibility import Visibility
from shared.clock import EARLIEST, LATEST, iso_utc, parse_iso
from shared.contract.facts import from_minor
from shared.http.bounds import decode_cursor, encode_cursor
from shared.http.errors import InvalidInput, NotFound


def account(customer_id: str, *, deps: Deps) -> dict[str, Any]:
    """Balance, tier with its benefits, debt and expiring lots, as last settled."""
    root = account_root(customer_id, deps=deps)
    held = deps.store.account(root)
    view = held.view if held else {"points_balance": 0, "tier": None, "debt": 0, "expiring": []}
    level = deps.rules.book().at(deps.clock()).tiers.level(view.get("tier"))
    return {"customer_id": root, **view, "tier_benefits": level.benefits if level else {},
            "updated_at": held.updated_at if held else None, "requested_id": customer_id,
            "tier_override": corrections.current_override(root, deps=deps)}


def redemptions(customer_id: str, *, offset: int, limit: int, deps: Deps) -> dict[str, Any]:
    """The member's redemptions, newest first, one page at a time."""
    root = account_root(customer_id, deps=deps)
    records = deps.store.records_of(root)
    balance = deps.store.balance(records)
    return {"items": [redemption_body(r, balance=balance) for r in deps.store.redemptions_of(records, offset=offset,
                                                                                    limit=limit)],
            "offset": offset, "limit": limit}


def ledger(customer_id: str, *, cursor: str | None, limit: int, deps: Deps) -> dict[str, Any]:
    """The account's ledger entries, newest first, one page at a time."""
    root = account_root(customer_id, deps=deps)
    records = deps.store.records_of(root)
    rows = deps.store.entries(records, before=decode_cursor(cursor, (str, str)), limit=limit + 1)
    page = rows[:limit]
    more = len(rows) > limit
    return {"customer_id": root, "points_balance": deps.store.balance(records),
            "items": [vars(e) for e in page],
            "next_cursor": encode_cursor((page[-1].posted_at, page[-1].entry_id)) if more else None}


def _before(facts: Facts, end: datetime) -> Facts:
    return Facts([p for p in facts.purchases if p.time < end], [r for r in facts.refunds if r.time < end],
                 facts.bonuses, [m for m in facts.movements if parse_iso(m.effective_at) < end], facts.order_owner,
                 holds=facts.holds, tier_imports=[i for i in facts.tier_imports if i.since < end])


def monthly_statement(customer_id: str, *, month: str, deps: Deps) -> dict[str, Any]:
    """A month of the account from its ledger, and the points expiring in the days after it."""
    try:
        m = parse_month(month)
    except ValueError as exc:
        raise InvalidInput("invalid_month", "month must look like YYYY-MM") from exc
    if not EARLIEST.year <= m[0] <= LATEST.year:
        # Month arithmetic at year 1 or 9999 leaves what datetime can hold.
        raise InvalidInput("month_out_of_range", f"month must be between {EARLIEST.year}-01 and {LATEST.year}-12")
    root = account_root(customer_id, deps=deps)
    store, zone, now = deps.store, deps.zone, deps.clock()
    start, end = month_start(m, zone), month_start(add_months(m, 1), zone)
    records = store.records_of(root)
    opening = store.balance(records, before=iso_utc(start))
    entries = store.entries_posted(records, start=iso_utc(start), end=iso_utc(end))
    as_of = min(end, now)
    horizon = as_of + timedelta(days=deps.config.statement_expiring_days)
    facts = _before(load_facts(store, records), as_of)
    s = settle(facts, deps.rules.book(), customer_id=root, now=as_of)
    expiring = [(at.astimezone(zone).isoformat(), n) for at, n in s.expiring if at <= horizon]
    st = statement(month_key(m), opening, entries, expiring)
    return {"customer_id": root, **{k: v for k, v in vars(st).items() if k != "expiring"},
            "complete": end <= now, "expiring_days": deps.config.statement_expiring_days,
            "expiring": [{"expires_at": at, "points": n} for at, n in st.expiring],
            "expiring_total": sum(n for _, n in st.expiring)}


def tier_history(customer_id: str, *, deps: Deps) -> dict[str, Any]:
    """The member's tier, its benefits, every change with its reason, and the current window."""
    root = account_root(customer_id, deps=deps)
    store, now = deps.store, deps.clock()
    facts = load_facts(store, store.records_of(root))
    book = deps.rules.book()
    line = timeline(facts.purchases, facts.refunds, book, now=now, order_owner=facts.order_owner, holds=facts.holds,
                    imports=facts.tier_imports)
    rules = book.at(now).tiers
    level = rules.level(line.tier)
    return {
        "customer_id": root, "tier": line.tier, "benefits": level.benefits if level else {},
        "failing_since": line.failing_since.isoformat() if line.failing_since else None,
        "history": [{"at": c.at.astimezone(deps.zone).isoformat(), "previous": c.previous, "tier": c.tier,
                     "direction": c.direction, "reason": c.reason} for c in line.changes],
        "window": [{"month": w["month"], "visits": w["visits"], "spend": str(from_minor(w["spend_minor"]))}
                   for w in line.window],
    }


def tier_rules(*, deps: Deps) -> dict[str, Any]:
    """The tier rules in force and each tier's benefits, for store staff."""
    rules = deps.rules.book().at(deps.clock()).tiers
    return {"window_months": rules.window_months, "review_every_months": rules.review_every_months,
            "grace_months": rules.grace_months,
            "levels": [{"name": lv.name, "visits_per_month": lv.visits, "spend_per_month": f"{lv.spend:.2f}",
                        "benefits": lv.benefits} for lv in rules.levels]}


def rules_in_force(*, deps: Deps) -> dict[str, Any]:
    """Every rule version, with the one in force now marked."""
    book, now = deps.rules.book(), deps.clock()
    current = book.at(now)
    return {"versions": [{**v.model_dump(mode="json"), "in_force": v is current} for v in book.versions]}


# -- issue 12, scoped access (H2) -----------------------------------------------------------------


def visible_root(customer_id: str, *, deps: Deps, seeing: Visibility) -> str:
    """The active customer an id belongs to, if the caller may see it; else the unknown id's very 404."""
    root = account_root(customer_id, deps=deps)
    return seeing.check(root, lambda c: deps.store.owners_of([c])[c],
                        not_found=NotFound("account_not_found", "no loyalty account for that customer"))


def check_approval(approval_id: str, *, deps: Deps, seeing: Visibility) -> None:
    """An approval for a customer outside the caller's scope answers as an unknown one (issue 14)."""
    row = deps.store.approval(approval_id)
    if row is None or not (seeing.company_wide or seeing.visible(
            deps.store.owners_of([deps.store.customer_of(row.customer_id)]))):
        raise NotFound("approval_not_found", "no such approval")


def check_redemption(redemption_id: str, *, deps: Deps, seeing: Visibility) -> None:
    """A redemption of a customer outside the caller's scope answers as an unknown one."""
    if seeing.company_wide:
        return
    row = deps.store.redemption(redemption_id)
    owner = deps.store.owners_of([deps.store.customer_of(row.customer_id)]) if row else {}
    if row is None or not seeing.visible(owner):
        raise NotFound("redemption_not_found", "no such redemption")

# -- issue 12, export (H4) ------------------------------------------------------------------------


def export(customer_id: str, *, deps: Deps) -> dict[str, Any]:
    """Loyalty's part of a customer's export: the account, every ledger entry, every redemption and the
    tier history, each as its own read route shows it."""
    entries: list[dict] = []
    cursor = None
    while True:
        page = ledger(customer_id, cursor=cursor, limit=500, deps=deps)
        entries += page["items"]
        if not (cursor := page["next_cursor"]):
            break
    spent: list[dict] = []
    while batch := redemptions(customer_id, offset=len(spent), limit=500, deps=deps)["items"]:
        spent += batch
    asked: list[dict] = []
    while batch := corrections.approvals(status=None, stores=None, offset=len(asked), limit=500, deps=deps,
                                         customer_id=customer_id)["items"]:
        asked += batch
    return {"account": account(customer_id, deps=deps), "ledger": entries, "redemptions": spent,
            "tiers": tier_history(customer_id, deps=deps),
            "tier_overrides": corrections.overrides(customer_id, deps=deps)["items"], "approvals": asked}
