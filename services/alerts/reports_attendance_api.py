"""The attendance sheet route (issue 15): ``GET /v1/reports/attendance?store_id=&month=``, JSON or CSV.

No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations, and ``DepsDep`` is
local to the router function.
"""

from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from services.alerts.handlers import Deps
from services.alerts.reports import attachment, attendance
from shared.access.stores import registry_for
from shared.access.visibility import Seeing, Visibility
from shared.contract.facts import from_minor
from shared.http.api import Caller, caller_dep, errors
from shared.http.bounds import MAX_ID
from shared.http.errors import Forbidden

CSV = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "the sheet as CSV"},
       **errors(403, 422)}


class AttendanceLineRead(BaseModel):
    """One customer's month at the store."""

    customer_id: str
    visits: int = Field(description="sittings: one per meal period of a day; a day's purchases outside every "
                                    "period (or at a store without periods) are one visit of that day")
    orders: int
    spend: Decimal = Field(description="net of refunds, two decimal places")
    covers: int | None = Field(description="party sizes summed over the visits that gave one")
    spend_per_head: Decimal | None = Field(description="spend of the visits with covers ÷ their covers, "
                                                       "rounded half to even to 0.01; null without covers")
    tier: str | None


class AttendanceRead(BaseModel):
    """A store's attendance sheet (客户考勤表) for one month."""

    store_id: str
    month: str
    meal_periods: list[str] = Field(description="the store's meal periods in the registry now")
    customers: int
    items: list[AttendanceLineRead]


def reports_attendance_router(deps: Deps) -> APIRouter:
    """The attendance sheet route over ``deps``."""
    r = APIRouter(prefix="/reports")
    DepsDep = Annotated[Deps, Depends(lambda: deps)]

    @r.get("/attendance", response_model=AttendanceRead, tags=["reports"], responses=CSV)
    def get_attendance(deps: DepsDep, request: Request, seeing: Seeing, caller: Caller = caller_dep("reader"),
                       store_id: str = Query(..., min_length=1, max_length=MAX_ID),
                       month: str = Query(..., max_length=32, description="YYYY-MM, in the store's days"),
                       format: Literal["json", "csv"] | None = Query(None, description="csv: the same as "
                                                                                       "Accept: text/csv")):
        """Per customer of the store in the month: visits, orders, spend, covers, spend per head and tier (only
        customers the caller may see; a store outside the caller's scope is 403 forbidden_scope)."""
        first, until = attendance.month_of(month)
        _check_store(seeing, store_id)
        store = deps.store
        rows = store.sittings_at(store_id, first=first, until=until)
        owner = store.customers_of(sorted({x.record_id for x in rows}))
        customers = sorted(set(owner.values()))
        if not seeing.company_wide:
            customers = sorted(seeing.visible(store.owners_of(customers)))
            shown = set(customers)
            rows = [x for x in rows if owner[x.record_id] in shown]
        lines = attendance.sheet(rows, customer_of=owner, tiers=store.tiers_of(customers))
        if format == "csv" or (format is None and "text/csv" in request.headers.get("accept", "")):
            return Response(attendance.sheet_csv(lines), media_type="text/csv; charset=utf-8",
                            headers=attachment("attendance", store_id, month))
        found = registry_for(deps.settings.stores_file).get(store_id)
        return AttendanceRead(
            store_id=store_id, month=month, customers=len(lines),
            meal_periods=[str(p) for p in found.meal_periods] if found else [],
            items=[AttendanceLineRead(customer_id=x.customer_id, visits=x.visits, orders=x.orders,
                                      spend=from_minor(x.spend_minor), covers=x.covers,
                                      spend_per_head=x.spend_per_head, tier=x.tier) for x in lines])

    return r


def _check_store(seeing: Visibility, store_id: str) -> None:
    """A store-scoped key reads its own store's sheet, a region key its region's stores, a company key any."""
    if not seeing.company_wide and store_id not in (seeing.stores or frozenset()):
        raise Forbidden("forbidden_scope", "that store is outside the key's scope")
