"""Identity's import routes (issue 14): start an import from uploaded files, follow it (``handlers/imports.py``
does the work)."""

# No ``from __future__ import annotations``: the routes' Annotated dependencies are local to router().

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile

from services.identity.handlers import Deps, commands, imports
from services.identity.schemas import ImportRead
from shared.access.visibility import Seeing
from shared.http.api import Caller, caller_dep, errors
from shared.http.bounds import Offset
from shared.http.errors import InvalidInput


def router(deps: Deps) -> APIRouter:
    """The import routes over ``deps``."""
    r = APIRouter()
    DepsDep = Annotated[Deps, Depends(lambda: deps)]
    Admin = Annotated[Caller, caller_dep("admin")]

    # Jobs the API started that a stopped process left half-done resume where the API serves (one process).
    r.add_event_handler("startup", lambda: imports.resume_unfinished(deps=deps, publish=deps.publish))

    @r.post("/imports", response_model=ImportRead, status_code=202, tags=["imports"], responses=errors(422))
    def post_import(deps: DepsDep, caller: Admin, seeing: Seeing,
                    members: Annotated[UploadFile | None, File(description="member file, CSV or JSON lines")] = None,
                    points: Annotated[UploadFile | None, File(description="points lots, CSV or JSON lines")] = None,
                    orders: Annotated[UploadFile | None, File(description="historical orders, CSV")] = None,
                    phone_column: Annotated[str, Form(max_length=64)] = "phone",
                    member_id_column: Annotated[str, Form(max_length=64)] = "member_id",
                    amount_column: Annotated[str, Form(max_length=64)] = "amount",
                    date_column: Annotated[str, Form(max_length=64)] = "date",
                    store_column: Annotated[str, Form(max_length=64)] = "store_id",
                    order_column: Annotated[str, Form(max_length=64)] = "order_id") -> ImportRead:
        """Start an import from uploaded files (multipart): ``members`` (with ``points``), or ``orders`` with
        its column mapping; follow it at ``GET /v1/imports/{id}``. The same files again are the same job:
        an unfinished one resumes, a finished one runs again and changes nothing."""
        seeing.company_only("importing members")
        if (members is None) == (orders is None) or (points is not None and members is None):
            raise InvalidInput("import_files", "upload either members (and optionally points) or orders")
        columns = {"phone": phone_column, "member_id": member_id_column, "amount": amount_column,
                   "date": date_column, "store": store_column, "order": order_column}
        kind = "members" if members is not None else "orders"
        uploads = {n: f for n, f in (("members", members), ("points", points), ("orders", orders)) if f is not None}
        if empty := [n for n, f in uploads.items() if not f.size]:
            raise InvalidInput("import_empty_file", f"the {empty[0]} file is empty", details={"field": empty[0]})
        files = {n: imports.keep_upload(f.file, deps=deps) for n, f in uploads.items()}
        job = imports.start(kind, files, options={"columns": columns} if kind == "orders" else {}, by=caller.name,
                            origin="api", deps=deps)
        commands.audit(caller, deps=deps, action=f"import.{kind}", target=job.job_id)
        imports.run_in_background(job.job_id, deps=deps, publish=deps.publish)
        return ImportRead(**imports.status(job.job_id, deps=deps, limit=0))

    @r.get("/imports/{import_id}", response_model=ImportRead, tags=["imports"], responses=errors(404))
    def get_import(import_id: str, deps: DepsDep, caller: Admin, seeing: Seeing,
                   offset: Offset = 0, limit: Annotated[int, Query(ge=0, le=1000)] = 100) -> ImportRead:
        """An import's status, counts, progress and rejected rows (line, column, reason), by file and line."""
        seeing.company_only("following an import")
        return ImportRead(**imports.status(import_id, deps=deps, offset=offset, limit=limit))


    return r
