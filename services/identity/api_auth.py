"""Identity's sign-out routes: revoke the presented staff token, and the list of signed-out tokens every other
service fetches (shared/access/revocations.py). Sign-in stays with the other routes in ``api.py``."""

# No ``from __future__ import annotations``: the routes' Annotated dependencies are local to router().

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from services.identity.handlers import Deps, commands
from services.identity.schemas import RevokedToken, RevokedTokensRead
from shared.access.visibility import visibility_dep
from shared.clock import iso_utc
from shared.http.api import Caller, caller_dep, errors
from shared.http.errors import InvalidInput


def _list_reader(request: Request) -> None:
    """The other services' own token for the list (``REVOCATIONS_AUDIENCE``), or a company-wide admin."""
    if request.app.state.auth.service_token(request.headers.get("authorization", "")) is not None:
        return
    # Anyone else as on any admin route (the gate leaves this route to this check: no role declared).
    caller_dep("admin").dependency(request)
    visibility_dep()(request).company_only("the signed-out tokens")


def router(deps: Deps) -> APIRouter:
    """The sign-out routes over ``deps``."""
    r = APIRouter()
    DepsDep = Annotated[Deps, Depends(lambda: deps)]
    Reader = Annotated[Caller, caller_dep("reader")]

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

    @r.get("/auth/revocations", response_model=RevokedTokensRead, tags=["auth"], responses=errors(401, 403),
           dependencies=[Depends(_list_reader)])
    def get_revocations(deps: DepsDep) -> RevokedTokensRead:
        """The signed-out tokens not expired yet, by id: what the other services fetch and refuse (with a token
        of their own that opens this list only), or a company-wide admin reads."""
        return RevokedTokensRead(items=[RevokedToken(token_id=t, expires_at=e)
                                        for t, e in deps.store.revoked_tokens(now=int(time.time()))])

    return r
