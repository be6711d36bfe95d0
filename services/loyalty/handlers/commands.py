"""Loyalty use cases people start through the API: rewards, redemptions, cancellations, adjustments.

A redemption checks the reward's validity, the member's limit, the stock and the balance and takes
both in one store transaction (SQLite serializes writers with ``BEGIN IMMEDIATE``; MongoDB takes
them with conditional updates whose conflicts retry the transaction), so stock is never oversold
and no balance goes below zero. An ``Idempotency-Key`` binds a key to the first successful answer:
the same key with the same body gets that answer again, with another body a 409. A refusal (409:
no points, no stock, over the limit) binds nothing: it changed nothing, so the same key may be sent
again once the cause is gone, and still spends at most once. A key belongs to the account, not to the id
in the URL: sent through a survivor's id and through an id merged into it, it spends once.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from services.loyalty.domain.model import ADJUST, REDEEM, Entry
from services.loyalty.handlers import Deps
from services.loyalty.handlers.accounts import settle_customer
from services.loyalty.store import IdempotencyRow, RedemptionRow, RewardRow
from shared.clock import iso_utc
from shared.http.errors import Conflict, InvalidInput, NotFound
from shared.storage.base import OutboxMessage, is_transient

T = TypeVar("T")


@dataclass(frozen=True)
class Answer:
    """What a write returns: the body, its status, whether it replays an earlier answer, what to relay."""

    body: dict[str, Any]
    status: int = 201
    replayed: bool = False
    outbox: list[OutboxMessage] | None = None


def _retrying(work: Callable[[], T]) -> T:
    # A busy database or a MongoDB write conflict between concurrent redemptions: run it again.
    return Retrying(retry=retry_if_exception(is_transient), wait=wait_exponential(0.01, max=0.5),
                    stop=stop_after_delay(30), reraise=True)(work)


def account_root(customer_id: str, *, deps: Deps) -> str:
    """The active customer an id belongs to; NotFound when loyalty never heard of it."""
    store = deps.store
    if not store.known(customer_id) and store.account(customer_id) is None:
        raise NotFound("account_not_found", "no loyalty account for that customer")
    return store.customer_of(customer_id)


def _fingerprint(scope: str, body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps([scope, body], sort_keys=True, default=str).encode()).hexdigest()


def _replay(kind: str, root: str, key: str | None, body: dict[str, Any], *, deps: Deps) -> Answer | None:
    if not key:
        return None
    # The key belongs to the account, whichever of its ids the request came through: it may have been
    # bound under any record merged into it (before the merge, or by an earlier version that scoped keys
    # by the id in the URL).
    for record in deps.store.records_of(root):  # the root's own first
        scope = f"{kind}:{record}"
        held = deps.store.idempotent(scope, key)
        if held is None:
            continue
        if held.fingerprint != _fingerprint(scope, body):
            raise Conflict("idempotency_key_reused", "this Idempotency-Key was used with a different request")
        return Answer(json.loads(held.body), held.status, replayed=True, outbox=[])
    return None


def _bind(scope: str, key: str | None, request: dict[str, Any], answer: dict[str, Any], *, deps: Deps) -> None:
    if key:
        deps.store.put_idempotent(IdempotencyRow(scope, key, _fingerprint(scope, request), 201,
                                                 json.dumps(answer, default=str), iso_utc(deps.clock())))


def _new_id(prefix: str, scope: str, key: str | None) -> str:
    if key:
        return prefix + hashlib.sha256(f"{scope}\0{key}".encode()).hexdigest()[:20]
    return prefix + uuid.uuid4().hex[:20]


def redemption_body(r: RedemptionRow, *, balance: int) -> dict[str, Any]:
    """A redemption as the API shows it."""
    return {**vars(r), "points_balance": balance}


def _once(customer_id: str, *, kind: str, key: str | None, request: dict[str, Any], deps: Deps,
          act: Callable[[str, str], tuple[dict[str, Any], list[OutboxMessage]]]) -> Answer:
    """Run ``act(root, new_id)`` in one transaction, once per ``Idempotency-Key``: the same key and body get
    the first successful answer again (a refusal changed nothing, so it binds nothing), another body a 409.
    The key is scoped to the account the id resolves to, not to the id in the URL: a survivor's id and a
    merged-away id of it are one member, and the same key through both spends once."""

    def work() -> Answer:
        with deps.store.transaction():
            root = account_root(customer_id, deps=deps)
            if replayed := _replay(kind, root, key, request, deps=deps):
                return replayed
            scope = f"{kind}:{root}"
            body, out = act(root, _new_id({"redeem": "rd_", "adjust": "adj_"}[kind], scope, key))
            _bind(scope, key, request, body, deps=deps)
            return Answer(body, 201, outbox=deps.store.outbox_add(out))

    return _retrying(work)


def redeem(customer_id: str, *, reward_id: str, quantity: int, key: str | None, by: str, deps: Deps) -> Answer:
    """Spend points on a reward: validity, member limit, stock and balance checked and taken at once."""

    def act(root: str, rid: str) -> tuple[dict[str, Any], list[OutboxMessage]]:
        store, now = deps.store, deps.clock()
        at = iso_utc(now)
        reward = store.reward(reward_id)
        if reward is None:
            raise NotFound("reward_not_found", "no such reward")
        if not reward.active or (reward.valid_from and at < reward.valid_from) or (
                reward.valid_until and at >= reward.valid_until):
            raise Conflict("reward_not_available", "this reward cannot be redeemed now")
        records = store.records_of(root)
        if reward.per_member_limit is not None and (
                store.redeemed_count(records, reward_id) + quantity > reward.per_member_limit):
            raise Conflict("per_member_limit", f"at most {reward.per_member_limit} of this reward per member")
        out = settle_customer(root, deps=deps, trigger=["redemption"], changed_from=None)
        cost = reward.points_cost * quantity
        held = store.account(root)
        if held is None or held.balance < cost:
            raise Conflict("insufficient_points", "the balance does not cover this reward")
        if not store.take_stock(reward_id, quantity):
            raise Conflict("out_of_stock", "this reward is out of stock")
        if not store.debit_balance(root, cost):
            # Taken by a concurrent redemption; the transaction rolls back, and without one
            # (a store that cannot) the stock goes back by hand.
            store.return_stock(reward_id, quantity)
            raise Conflict("insufficient_points", "the balance does not cover this reward")
        row = RedemptionRow(rid, root, root, reward_id, quantity, cost, "completed", at, by)
        store.add_redemption(row)
        store.add_entries([Entry(f"r:{rid}|redemption|1", root, f"r:{rid}", "redemption", REDEEM, -cost, at, at,
                                 {"redemption_id": rid, "reward_id": reward_id, "quantity": quantity, "by": by})])
        out += settle_customer(root, deps=deps, trigger=[f"redemption:{rid}"], changed_from=now)
        return redemption_body(row, balance=store.account(root).balance), out  # type: ignore[union-attr]

    return _once(customer_id, kind="redeem", key=key, request={"reward_id": reward_id, "quantity": quantity},
                 deps=deps, act=act)


def cancel(redemption_id: str, *, reason: str, by: str, deps: Deps) -> Answer:
    """Cancel a redemption: its points go back to the member and its stock to the reward."""

    def work() -> Answer:
        store = deps.store
        with store.transaction():
            row = store.redemption(redemption_id)
            if row is None:
                raise NotFound("redemption_not_found", "no such redemption")
            now = deps.clock()
            at = iso_utc(now)
            if not store.cancel_redemption(redemption_id, at=at, by=by, reason=reason):
                raise Conflict("already_cancelled", "this redemption was cancelled already")
            store.return_stock(row.reward_id, row.quantity)
            store.add_entries([Entry(f"r:{redemption_id}|cancel|1", row.record_id, f"r:{redemption_id}", "cancel",
                                     REDEEM, row.points, at, at, {"redemption_id": redemption_id, "reason": reason,
                                                                  "by": by})])
            root = store.customer_of(row.record_id)
            out = settle_customer(root, deps=deps, trigger=[f"cancel:{redemption_id}"], changed_from=now)
            done = replace(row, status="cancelled", cancelled_at=at, cancelled_by=by, cancel_reason=reason)
            return Answer(redemption_body(done, balance=store.account(root).balance), 200,  # type: ignore[union-attr]
                          outbox=store.outbox_add(out))

    return _retrying(work)


def adjust(customer_id: str, *, points: int, reason: str, key: str | None, by: str, deps: Deps) -> Answer:
    """A manual adjustment by an operator, with its reason; it never takes the balance below zero."""
    if points == 0:
        raise InvalidInput("zero_adjustment", "an adjustment must add or take points")

    def act(root: str, aid: str) -> tuple[dict[str, Any], list[OutboxMessage]]:
        return post_adjustment(root, adjustment_id=aid, points=points, reason=reason, by=by, deps=deps)

    return _once(customer_id, kind="adjust", key=key, request={"points": points, "reason": reason}, deps=deps,
                 act=act)


def post_adjustment(root: str, *, adjustment_id: str, points: int, reason: str, by: str, deps: Deps,
                    cause: dict[str, Any] | None = None,
                    record: str | None = None) -> tuple[dict[str, Any], list[OutboxMessage]]:
    """Post a manual adjustment to ``root``'s ledger inside the caller's transaction, never below a zero balance;
    the answer's body and what to publish. ``cause``: more to note on the entry (an approval, issue 14);
    ``record``: the record (of ``root``) the entry belongs to, so an unmerge gives it back with it."""
    store, now = deps.store, deps.clock()
    at, aid = iso_utc(now), adjustment_id
    out = settle_customer(root, deps=deps, trigger=["adjustment"], changed_from=None)
    if points < 0 and not store.debit_balance(root, -points):
        raise Conflict("insufficient_points", "the balance does not cover this adjustment")
    store.add_entries([Entry(f"a:{aid}|manual|1", record or root, f"a:{aid}", "manual", ADJUST, points, at, at,
                             {"adjustment_id": aid, "reason": reason, "by": by, **(cause or {})})])
    out += settle_customer(root, deps=deps, trigger=[f"adjustment:{aid}"], changed_from=now)
    return {"adjustment_id": aid, "customer_id": root, "points": points, "reason": reason, "by": by, "at": at,
            "points_balance": store.account(root).balance}, out  # type: ignore[union-attr]


def create_reward(fields: dict[str, Any], *, deps: Deps) -> RewardRow:
    """Add a reward to the catalogue."""
    row = RewardRow(reward_id="rw_" + uuid.uuid4().hex[:16], created_at=iso_utc(deps.clock()), **fields)
    with deps.store.transaction():
        deps.store.add_reward(row)
    return row


def update_reward(reward_id: str, *, changes: dict[str, Any], add_stock: int, deps: Deps) -> RewardRow:
    """Change a reward (name, cost, validity, limit, active) and add stock atomically."""
    with deps.store.transaction():
        held = deps.store.reward(reward_id)
        if held is None:
            raise NotFound("reward_not_found", "no such reward")
        if held.stock + add_stock < 0:
            raise Conflict("negative_stock", "that would take the stock below zero")
        start, end = changes.get("valid_from", held.valid_from), changes.get("valid_until", held.valid_until)
        if start is not None and end is not None and start >= end:
            raise InvalidInput("invalid_validity", "valid_from must be before valid_until")
        deps.store.update_reward(reward_id, changes=changes, add_stock=add_stock)
        return deps.store.reward(reward_id)  # type: ignore[return-value]
