"""Redeeming a reward from the customer page: the catalogue with stock, a confirmation that carries one
Idempotency-Key, and the redemption, so a double click (or a resent form) spends the points once."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import Response

from services.console.clients import ApiError
from services.console.i18n import N_, _
from services.console.web import ClientsDep, SessionDep, render

router = APIRouter()
PAGE = 10
# Loyalty's refusals (409/404) in words, with what to do about each.
REFUSALS = {"insufficient_points": N_("The balance does not cover this reward. Choose a cheaper reward."),
            "out_of_stock": N_("This reward is out of stock. Choose another or ask head office to add stock."),
            "per_member_limit": N_("This member has redeemed this reward as often as allowed."),
            "reward_not_available": N_("This reward cannot be redeemed now (inactive or outside its dates)."),
            "reward_not_found": N_("This reward is no longer in the catalogue. Reload the rewards.")}


@router.get("/customers/{customer_id}/rewards")
async def rewards(request: Request, customer_id: str, session: SessionDep, clients: ClientsDep,
                  offset: int = Query(0, ge=0)) -> Response:
    """The active rewards with cost and stock, paged (the customer page loads this panel)."""
    page = await clients.get("loyalty", "/v1/loyalty/rewards", token=session.token, active_only="true",
                             offset=offset, limit=PAGE + 1)
    items = page["items"]
    return render(request, "customers/_rewards.html", cid=customer_id, rewards=items[:PAGE], offset=offset,
                  more=len(items) > PAGE, page_size=PAGE)


@router.get("/customers/{customer_id}/rewards/{reward_id}/confirm")
async def confirm(request: Request, customer_id: str, reward_id: str, session: SessionDep,
                  clients: ClientsDep) -> Response:
    """The confirmation: what it costs, the balance after; its form carries a fresh Idempotency-Key."""
    reward = await clients.get("loyalty", f"/v1/loyalty/rewards/{reward_id}", token=session.token)
    account = await clients.optional("loyalty", f"/v1/loyalty/accounts/{customer_id}", token=session.token)
    balance = account["points_balance"] if account else 0
    return render(request, "customers/_redeem_confirm.html", cid=customer_id, reward=reward, balance=balance,
                  key=uuid.uuid4().hex, refusal=None)


@router.post("/customers/{customer_id}/redemptions")
async def redeem(request: Request, customer_id: str, session: SessionDep, clients: ClientsDep,
                 reward_id: Annotated[str, Form(max_length=64)], key: Annotated[str, Form(max_length=200)]
                 ) -> Response:
    """Redeem once per confirmation: the same key sent again gets loyalty's first answer back."""
    try:
        done = await clients.post("loyalty", f"/v1/loyalty/accounts/{customer_id}/redemptions",
                                  token=session.token, body={"reward_id": reward_id, "quantity": 1},
                                  headers={"Idempotency-Key": key})
    except ApiError as exc:
        if exc.code not in REFUSALS:
            raise
        return render(request, "customers/_redeem_refused.html", refusal=_(REFUSALS[exc.code]))
    reward = await clients.optional("loyalty", f"/v1/loyalty/rewards/{reward_id}", token=session.token)
    # The rewards panel reloads on this event, so the stock it shows is the stock after the redemption.
    return render(request, "customers/_redeem_done.html", cid=customer_id, done=done, reward=reward,
                  headers={"HX-Trigger": "redeemed"})


@router.get("/customers/{customer_id}/rewards/close")
async def close(session: SessionDep) -> Response:
    """Close the confirmation without redeeming."""
    return Response("", media_type="text/html")
