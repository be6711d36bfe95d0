"""Identity's sign-out routes: revoke the presented staff token, and the list of signed-out tokens every other
service fetches (shared/access/revocations.py). Sign-in stays with the other routes in ``api.py``."""

# No ``from __future__ import annotations``: the routes' Annotated dependencies are local to router().

import time
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from services.identity.handlers import Deps, commands
from services.identity.schemas import RevokedToken, RevokedTokensRead
from shared.access.visibility import Seeing
from shared.clock import iso_utc
from shared.http.api import Caller, caller_dep, errors
from shared.http.errors import InvalidInput


def router(deps: Deps) -> APIRouter:
    """The sign-out routes over ``deps``."""
    r = APIRouter()
    DepsDep = Annotated[Deps, Depends(lambda: deps)]
    Reader = Annotated[Caller, caller_dep("reader")]
    Admin = Annotated[Caller, caller_dep("admin")]

    @r.post("/auth/sign-out", status_code=204, tags=["auth"], response_class=Response, responses=errors(422))
    def post_sign_out(deps: DepsDep, caller: Reader) -> Response:
        """Sign the presented staff token out: from now on every service answers it ``401 token_revoked``
        (identity at once, the others within ``CRM_TOKEN_REVOCATION_POLL_S``); recorded in the audit log."""
        if caller.token_id is None or caller.token_expires is None:
            raise InvalidInput("not_a_token", "only a staff token signs out; an API key is withdrawn from its "
                                              "keys file")
        # Token expiry is on the wall clock tokens are issued and checked by (shared/access/tokens.py).
        with deps.store.transaction():
            deps.store.revoke_token(caller.token_id, expires_at=caller.token_expires, at=iso_utc(deps.clock()),
                                    now=int(time.time()))
            commands.audit(caller, deps=deps, action="auth.sign_out", target=caller.token_id)
        return Response(status_code=204)

    @r.get("/auth/revocations", response_model=RevokedTokensRead, tags=["auth"])
    def get_revocations(deps: DepsDep, caller: Admin, seeing: Seeing) -> RevokedTokensRead:
        """The signed-out tokens not expired yet, by id: what the other services fetch and refuse (company-wide
        admins: the services sign their fetch as one)."""
        seeing.company_only("the signed-out tokens")
        return RevokedTokensRead(items=[RevokedToken(token_id=t, expires_at=e)
                                        for t, e in deps.store.revoked_tokens(now=int(time.time()))])

    return r
