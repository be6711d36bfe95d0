"""Identity's search by name (issue 16): the customers of the caller's scope with a name, paged."""

# No ``from __future__ import annotations``: FastAPI resolves the routes' Annotated dependencies where they are
# defined (as in api.py).

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.identity.handlers import Deps, names
from services.identity.schemas import CustomersPage
from shared.access.visibility import Seeing
from shared.http.api import Caller, caller_dep, errors
from shared.http.bounds import Offset


def router(deps: Deps) -> APIRouter:
    """``GET /v1/customers/search``; included before identity's other routes (``/customers/{customer_id}``)."""
    r = APIRouter()
    DepsDep = Annotated[Deps, Depends(lambda: deps)]
    Reader = Annotated[Caller, caller_dep("reader")]

    @r.get("/customers/search", response_model=CustomersPage, tags=["customers"], responses=errors(404))
    def search(deps: DepsDep, caller: Reader, seeing: Seeing,
               name: str = Query(..., min_length=1, max_length=200,
                                 description="a full name; full-width and half-width, case and spaces do not matter"),
               offset: Offset = 0, limit: int = Query(20, ge=1, le=50)) -> CustomersPage:
        """The customers the caller may see (store staff: their stores' customers) whose name is ``name``, by id,
        each as the single customer view, masked; 404 when there is none. Counted as a lookup (its budgets)."""
        return names.customers_named(name, deps=deps, seeing=seeing, offset=offset, limit=limit)

    return r
