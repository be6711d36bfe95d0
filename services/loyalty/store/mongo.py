"""Loyalty's production store: MongoDB through pymongo, state and outbox in one transaction.

Stock and balance are taken with conditional updates (``stock >= n``, ``balance >= n``) inside the
transaction; two transactions that touch the same reward or account conflict and one is retried.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from services.loyalty.domain.model import DERIVED_KINDS, Bonus, Entry, Line, Posted, Purchase, Refund
from services.loyalty.store import (
    AccountRow,
    Announcement,
    IdempotencyRow,
    RedemptionRow,
    RewardRow,
    open_cause,
    open_note,
    opened_redemption,
    seal_cause,
    seal_note,
)
from services.loyalty.store.mongo_corrections import MongoCorrections
from services.loyalty.store.mongo_imports import MongoImports
from shared.clock import iso_utc, parse_iso
from shared.contract.facts import epoch_ms
from shared.storage.fact_tables import mongo_insert_new
from shared.storage.membership import MongoMembership
from shared.storage.outbox import MongoStore
from shared.storage.owners import MongoOwners


def _key(*parts: str) -> str:
    return "\x1f".join(parts)


def _purchase(d: dict) -> Purchase:
    return Purchase(d["source"], d["id"], d["record_id"], d["order_id"], d["amount_minor"], parse_iso(d["time"]),
                    d["day"], tuple(Line(*ln) for ln in d["lines"]))


def _entry(d: dict, keys) -> Entry:
    return Entry(d["_id"], d["record_id"], d["bucket"], d["rule"], d["kind"], d["points"], d["effective_at"],
                 d["posted_at"], open_cause(d["cause"], keys))


def _reward(d: dict) -> RewardRow:
    return RewardRow(d["_id"], d["name"], d["points_cost"], d["stock"], d.get("per_member_limit"),
                     d.get("valid_from"), d.get("valid_until"), bool(d["active"]), d["created_at"],
                     d.get("description", ""), d.get("redeemed", 0))


def _redemption(d: dict) -> RedemptionRow:
    return RedemptionRow(d["_id"], *(d[k] for k in ("customer_id", "record_id", "reward_id", "quantity", "points",
                                                     "status", "created_at", "by")),
                         d.get("cancelled_at"), d.get("cancelled_by"), d.get("cancel_reason"))


class MongoLoyaltyStore(MongoStore, MongoMembership, MongoOwners, MongoCorrections, MongoImports):
    """Loyalty data in MongoDB; writes join the current transaction."""

    def create_indexes(self) -> None:
        """The indexes this service's queries and idempotent writes rely on."""
        self.create_membership_indexes()
        self.create_owner_indexes()
        self.create_correction_indexes()
        self.create_import_indexes()
        self.mdb["purchases"].create_index([("record_id", 1), ("time_ms", 1)])
        self.mdb["purchases"].create_index("order_id")
        self.mdb["refunds"].create_index("order_id")
        self.mdb["bonuses"].create_index("record_id")
        self.mdb["ledger"].create_index([("record_id", 1), ("bucket", 1), ("rule", 1)])
        self.mdb["ledger"].create_index([("record_id", 1), ("posted_at", -1), ("_id", -1)])
        self.mdb["ledger"].create_index([("record_id", 1), ("kind", 1), ("points", 1)])
        self.mdb["accounts"].create_index("next_due_ms")
        self.mdb["announcements"].create_index([("customer_id", 1), ("expires_at", 1)])
        self.mdb["redemptions"].create_index([("record_id", 1), ("reward_id", 1)])

    def customers_of(self, record_ids: list[str]) -> dict[str, str]:
        """The customer each of these records belongs to now (itself if never seen), in one query."""
        held = {d["_id"]: d["customer_id"] for d in self.mdb["memberships"].find({"_id": {"$in": record_ids}})}
        return {r: held.get(r, r) for r in record_ids}

    def known(self, record_id: str) -> bool:
        """Whether identity ever told us about this record."""
        return self.mdb["memberships"].find_one({"_id": record_id}, {"_id": 1}) is not None

    def _insert_new(self, name: str, docs: list[dict]) -> set:
        return mongo_insert_new(self.mdb[name], docs)

    # -- facts --------------------------------------------------------------------------
    def add_purchases(self, rows: list[Purchase]) -> list[Purchase]:
        """Keep purchases not seen before; returns the new ones."""
        docs = [{"_id": _key(p.source, p.id), "source": p.source, "id": p.id, "record_id": p.record_id,
                 "order_id": p.order_id, "amount_minor": p.amount_minor, "time_ms": epoch_ms(p.time),
                 "time": iso_utc(p.time), "day": p.day, "lines": [list(vars(ln).values()) for ln in p.lines]}
                for p in rows]
        new = self._insert_new("purchases", docs)
        return [p for p in rows if _key(p.source, p.id) in new and not new.discard(_key(p.source, p.id))]

    def add_refunds(self, rows: list[Refund]) -> list[Refund]:
        """Keep refunds not seen before; returns the new ones."""
        docs = [{"_id": _key(r.source, r.id), "source": r.source, "id": r.id, "record_id": r.record_id,
                 "order_id": r.order_id, "amount_minor": r.amount_minor, "time": iso_utc(r.time)} for r in rows]
        new = self._insert_new("refunds", docs)
        return [r for r in rows if _key(r.source, r.id) in new and not new.discard(_key(r.source, r.id))]

    def put_bonus(self, row: Bonus) -> bool:
        """Keep a campaign grant, the newest version per grant id; True when it changed anything."""
        coll = self.mdb["bonuses"]
        held = coll.find_one({"_id": row.grant_id})
        doc = {"campaign_id": row.campaign_id, "record_id": row.record_id, "multiplier": str(row.multiplier),
               "starts_at": iso_utc(row.starts_at), "ends_at": iso_utc(row.ends_at), "active": row.active,
               "at": iso_utc(row.at)}
        if held is not None and (doc["at"], not row.active) <= (held["at"], not held["active"]):
            return False
        coll.replace_one({"_id": row.grant_id}, doc, upsert=True)
        return True

    def purchases_of(self, record_ids: list[str], *, since_ms: int | None = None) -> list[Purchase]:
        """Purchases of these records (made at or after ``since_ms``, if given)."""
        q: dict[str, Any] = {"record_id": {"$in": record_ids}}
        if since_ms is not None:
            q["time_ms"] = {"$gte": since_ms}
        return [_purchase(d) for d in self.mdb["purchases"].find(q)]

    def purchases_for_orders(self, order_ids: list[str]) -> list[Purchase]:
        """Purchases with these order ids, whoever made them."""
        if not order_ids:
            return []
        return [_purchase(d) for d in self.mdb["purchases"].find({"order_id": {"$in": order_ids}})]

    def refunds_for_orders(self, order_ids: list[str]) -> list[Refund]:
        """Refunds of these orders, whoever asked for them."""
        if not order_ids:
            return []
        return [Refund(d["source"], d["id"], d["record_id"], d["order_id"], d["amount_minor"], parse_iso(d["time"]))
                for d in self.mdb["refunds"].find({"order_id": {"$in": order_ids}})]

    def bonuses_of(self, record_ids: list[str]) -> list[Bonus]:
        """Campaign grants to these records."""
        return [Bonus(d["_id"], d["campaign_id"], d["record_id"], Decimal(d["multiplier"]), parse_iso(d["starts_at"]),
                      parse_iso(d["ends_at"]), bool(d["active"]), parse_iso(d["at"]))
                for d in self.mdb["bonuses"].find({"record_id": {"$in": record_ids}})]

    def records_of_many(self, customer_ids: list[str]) -> dict[str, list[str]]:
        """What :meth:`records_of` answers for each of these customers, in one query."""
        more: dict[str, list[str]] = {c: [] for c in customer_ids}
        for d in self.mdb["memberships"].find({"customer_id": {"$in": list(more)}}).sort("_id", 1):
            if d["_id"] != d["customer_id"]:
                more[d["customer_id"]].append(d["_id"])
        return {c: [c, *rs] for c, rs in more.items()}

    # -- ledger -------------------------------------------------------------------------
    def add_entries(self, entries: list[Entry]) -> None:
        """Append entries; an entry id is unique, so nothing is ever posted twice."""
        if entries:
            self.mdb["ledger"].insert_many([
                {"_id": e.entry_id, "record_id": e.record_id, "bucket": e.bucket, "rule": e.rule, "kind": e.kind,
                 "points": e.points, "effective_at": e.effective_at, "posted_at": e.posted_at,
                 "cause": seal_cause(e.cause, self.keys)}
                for e in entries])

    def posted(self, record_ids: list[str], *, buckets: list[str] | None = None) -> dict[tuple[str, str], Posted]:
        """What each derived bucket of these records (or only these buckets of them) adds up to now."""
        match: dict[str, Any] = {"record_id": {"$in": record_ids}, "kind": {"$in": list(DERIVED_KINDS)}}
        if buckets is not None:
            match["bucket"] = {"$in": buckets}
        rows = self.mdb["ledger"].aggregate([
            {"$match": match},
            {"$group": {"_id": {"b": "$bucket", "r": "$rule", "rec": "$record_id"}, "s": {"$sum": "$points"},
                        "n": {"$sum": 1}}},
        ])
        return {(d["_id"]["b"], d["_id"]["r"]): Posted(d["_id"]["rec"], d["s"], d["n"]) for d in rows}

    def posted_many(self, asks: dict[str, tuple[list[str], list[str] | None]]
                    ) -> dict[str, dict[tuple[str, str], Posted]]:
        """:meth:`posted` for each of several customers (customer -> (its records, its buckets or None)), in two
        aggregations for all of them."""
        out: dict[str, dict[tuple[str, str], Posted]] = {c: {} for c in asks}
        for whole in (True, False):
            mine = [c for c, (_, buckets) in asks.items() if (buckets is None) == whole]
            owner = {r: c for c in mine for r in asks[c][0]}
            if not owner:
                continue
            match: dict[str, Any] = {"record_id": {"$in": list(owner)}, "kind": {"$in": list(DERIVED_KINDS)}}
            scope = {c: set(asks[c][1] or ()) for c in mine}
            if not whole:
                match["bucket"] = {"$in": sorted(set().union(*scope.values()))}
            for d in self.mdb["ledger"].aggregate([
                {"$match": match},
                {"$group": {"_id": {"b": "$bucket", "r": "$rule", "rec": "$record_id"}, "s": {"$sum": "$points"},
                            "n": {"$sum": 1}}},
            ]):
                rec, b = d["_id"]["rec"], d["_id"]["b"]
                if whole or b in scope[owner[rec]]:
                    out[owner[rec]][(b, d["_id"]["r"])] = Posted(rec, d["s"], d["n"])
        return out

    def movements_of(self, record_ids: list[str]) -> list[Entry]:
        """Redemptions, cancellations and manual adjustments of these records."""
        cur = self.mdb["ledger"].find({"record_id": {"$in": record_ids}, "kind": {"$in": ["redeem", "adjust"]}})
        return [_entry(d, self.keys) for d in cur]

    def balance(self, record_ids: list[str], *, before: str | None = None) -> int:
        """The sum of these records' entries (posted before ``before``, if given)."""
        match: dict[str, Any] = {"record_id": {"$in": record_ids}}
        if before is not None:
            match["posted_at"] = {"$lt": before}
        rows = list(self.mdb["ledger"].aggregate([{"$match": match},
                                                  {"$group": {"_id": None, "s": {"$sum": "$points"}}}]))
        return int(rows[0]["s"]) if rows else 0

    def balances_of(self, record_ids: list[str]) -> dict[str, int]:
        """The sum of each of these records' entries (records with none are left out)."""
        rows = self.mdb["ledger"].aggregate([{"$match": {"record_id": {"$in": list(record_ids)}}},
                                             {"$group": {"_id": "$record_id", "sum": {"$sum": "$points"}}}])
        return {d["_id"]: d["sum"] for d in rows}

    def entries(self, record_ids: list[str], *, before: tuple[str, str] | None, limit: int) -> list[Entry]:
        """Entries newest first, after a keyset cursor ``(posted_at, entry_id)``."""
        q: dict[str, Any] = {"record_id": {"$in": record_ids}}
        if before is not None:
            q["$or"] = [{"posted_at": {"$lt": before[0]}}, {"posted_at": before[0], "_id": {"$lt": before[1]}}]
        cur = self.mdb["ledger"].find(q).sort([("posted_at", -1), ("_id", -1)]).limit(limit)
        return [_entry(d, self.keys) for d in cur]

    def entries_posted(self, record_ids: list[str], *, start: str, end: str) -> list[Entry]:
        """Entries posted in ``[start, end)``."""
        cur = self.mdb["ledger"].find({"record_id": {"$in": record_ids}, "posted_at": {"$gte": start, "$lt": end}})
        return [_entry(d, self.keys) for d in cur.sort([("posted_at", 1), ("_id", 1)])]

    # -- accounts -----------------------------------------------------------------------
    def account(self, customer_id: str) -> AccountRow | None:
        """The account snapshot."""
        d = self.mdb["accounts"].find_one({"_id": customer_id})
        if d is None:
            return None
        return AccountRow(d["_id"], d["balance"], d["debt"], d.get("tier"), d["view"], d["version"],
                          d.get("next_due_ms"), d["updated_at"])

    def accounts_of(self, customer_ids: list[str]) -> dict[str, AccountRow]:
        """The account snapshots of these customers (those that have one)."""
        return {d["_id"]: AccountRow(d["_id"], d["balance"], d["debt"], d.get("tier"), d["view"], d["version"],
                                     d.get("next_due_ms"), d["updated_at"])
                for d in self.mdb["accounts"].find({"_id": {"$in": list(customer_ids)}})}

    def put_account(self, row: AccountRow) -> None:
        """Write the snapshot."""
        self.put_accounts([row])

    def put_accounts(self, rows: list[AccountRow]) -> None:
        """Write these snapshots (a batch's settles), in one bulk write."""
        # Every field of the document is set, so an update is the replacement; mongomock's bulk_write takes
        # UpdateMany on the unique _id (one document) but not ReplaceOne with this pymongo.
        from pymongo import UpdateMany

        if rows:
            self.mdb["accounts"].bulk_write([UpdateMany({"_id": row.customer_id}, {"$set": {
                "balance": row.balance, "debt": row.debt, "tier": row.tier, "view": row.view, "version": row.version,
                "next_due_ms": row.next_due_ms, "updated_at": row.updated_at}}, upsert=True) for row in rows])

    def debit_balance(self, customer_id: str, points: int) -> bool:
        """Take points off the snapshot if it holds them; False (and no change) otherwise."""
        res = self.mdb["accounts"].update_one({"_id": customer_id, "balance": {"$gte": points}},
                                              {"$inc": {"balance": -points}})
        return res.modified_count == 1 or (points == 0 and res.matched_count == 1)

    def checkpoint(self, customer_id: str) -> str | None:
        """The account's checkpoint (JSON text), if one was kept."""
        d = self.mdb["checkpoints"].find_one({"_id": customer_id})
        return d["state"] if d else None

    def checkpoints_of(self, customer_ids: list[str]) -> dict[str, str]:
        """The checkpoints kept for these customers (those that have one)."""
        return {d["_id"]: d["state"] for d in self.mdb["checkpoints"].find({"_id": {"$in": list(customer_ids)}})}

    def put_checkpoint(self, customer_id: str, state: str) -> None:
        """Keep the account's checkpoint, replacing the one before."""
        self.put_checkpoints({customer_id: state})

    def put_checkpoints(self, states: dict[str, str]) -> None:
        """Keep these accounts' checkpoints (customer -> state), replacing the ones before, in one bulk write."""
        from pymongo import UpdateMany

        if states:
            self.mdb["checkpoints"].bulk_write([UpdateMany({"_id": c}, {"$set": {"state": state}}, upsert=True)
                                                for c, state in states.items()])

    def due_accounts(self, now_ms: int, *, limit: int) -> list[str]:
        """Accounts with an expiry, announcement or review due by ``now_ms``."""
        cur = self.mdb["accounts"].find({"next_due_ms": {"$ne": None, "$lte": now_ms}}, {"_id": 1})
        return [d["_id"] for d in cur.sort("next_due_ms", 1).limit(limit)]

    def account_count(self) -> int:
        """How many accounts there are."""
        return self.mdb["accounts"].count_documents({})

    def announced(self, customer_id: str, expires_at: list[str]) -> dict[str, int]:
        """The most points already announced to a customer per expiry moment, for these moments."""
        if not expires_at:
            return {}
        rows = self.mdb["announcements"].aggregate([
            {"$match": {"customer_id": customer_id, "expires_at": {"$in": expires_at}}},
            {"$group": {"_id": "$expires_at", "n": {"$max": "$points"}}}])
        return {d["_id"]: int(d["n"]) for d in rows}

    def announced_many(self, asks: dict[str, list[str]]) -> dict[str, dict[str, int]]:
        """:meth:`announced` for each of several customers (customer -> its expiry moments), in one aggregation
        (a batch's settles ask once, not once a customer)."""
        out: dict[str, dict[str, int]] = {c: {} for c in asks}
        wanted = {c: set(moments) for c, moments in asks.items() if moments}
        if not wanted:
            return out
        for d in self.mdb["announcements"].aggregate([
            {"$match": {"customer_id": {"$in": list(wanted)}}},
            {"$group": {"_id": {"c": "$customer_id", "at": "$expires_at"}, "n": {"$max": "$points"}}}]):
            c, at = d["_id"]["c"], d["_id"]["at"]
            if at in wanted[c]:
                out[c][at] = int(d["n"])
        return out

    def add_announcements(self, rows: list[Announcement]) -> None:
        """Remember announcements made."""
        self._insert_new("announcements", [{"_id": a.announcement_id, "customer_id": a.customer_id,
                                            "expires_at": a.expires_at, "points": a.points, "at": a.at}
                                           for a in rows])

    # -- rewards and redemptions --------------------------------------------------------
    def add_reward(self, row: RewardRow) -> None:
        """A new reward in the catalogue."""
        doc = {k: v for k, v in vars(row).items() if k != "reward_id"}
        self.mdb["rewards"].insert_one({"_id": row.reward_id, **doc})

    def reward(self, reward_id: str) -> RewardRow | None:
        """One reward."""
        d = self.mdb["rewards"].find_one({"_id": reward_id})
        return _reward(d) if d else None

    def rewards(self, *, active_only: bool, offset: int, limit: int) -> list[RewardRow]:
        """The catalogue, oldest first."""
        cur = self.mdb["rewards"].find({"active": True} if active_only else {})
        return [_reward(d) for d in cur.sort([("created_at", 1), ("_id", 1)]).skip(offset).limit(limit)]

    def update_reward(self, reward_id: str, *, changes: dict[str, Any], add_stock: int = 0) -> bool:
        """Change a reward's fields and add to its stock; False when it does not exist."""
        update: dict[str, Any] = {"$inc": {"stock": add_stock}}
        if changes:
            update["$set"] = changes
        return self.mdb["rewards"].update_one({"_id": reward_id}, update).matched_count == 1

    def take_stock(self, reward_id: str, quantity: int) -> bool:
        """Take stock if there is enough; False (and no change) otherwise."""
        res = self.mdb["rewards"].update_one({"_id": reward_id, "stock": {"$gte": quantity}},
                                             {"$inc": {"stock": -quantity, "redeemed": quantity}})
        return res.matched_count == 1

    def return_stock(self, reward_id: str, quantity: int) -> None:
        """Put stock back (a cancelled redemption)."""
        self.mdb["rewards"].update_one({"_id": reward_id}, {"$inc": {"stock": quantity, "redeemed": -quantity}})

    def add_redemption(self, row: RedemptionRow) -> None:
        """Record a redemption."""
        doc = {k: v for k, v in vars(row).items() if k != "redemption_id"}
        self.mdb["redemptions"].insert_one({"_id": row.redemption_id, **doc})

    def redemption(self, redemption_id: str) -> RedemptionRow | None:
        """One redemption."""
        d = self.mdb["redemptions"].find_one({"_id": redemption_id})
        return opened_redemption(_redemption(d), self.keys) if d else None

    def redemptions_of(self, record_ids: list[str], *, offset: int, limit: int) -> list[RedemptionRow]:
        """Redemptions of these records, newest first."""
        cur = self.mdb["redemptions"].find({"record_id": {"$in": record_ids}})
        cur = cur.sort([("created_at", -1), ("_id", -1)]).skip(offset).limit(limit)
        return [opened_redemption(_redemption(d), self.keys) for d in cur]

    def redeemed_count(self, record_ids: list[str], reward_id: str) -> int:
        """How many of a reward these records hold (cancelled ones do not count)."""
        rows = list(self.mdb["redemptions"].aggregate([
            {"$match": {"record_id": {"$in": record_ids}, "reward_id": reward_id, "status": "completed"}},
            {"$group": {"_id": None, "n": {"$sum": "$quantity"}}}]))
        return int(rows[0]["n"]) if rows else 0

    def cancel_redemption(self, redemption_id: str, *, at: str, by: str, reason: str) -> bool:
        """Mark a completed redemption cancelled; False when it was not completed."""
        res = self.mdb["redemptions"].update_one(
            {"_id": redemption_id, "status": "completed"},
            {"$set": {"status": "cancelled", "cancelled_at": at, "cancelled_by": by,
                      "cancel_reason": seal_note(self.keys, "cancel_reason", reason)}})
        return res.matched_count == 1

    def idempotent(self, scope: str, key: str) -> IdempotencyRow | None:
        """The answer already given to this key, if any."""
        d = self.mdb["idempotency"].find_one({"_id": _key(scope, key)})
        if d is None:
            return None
        body = open_note(self.keys, "idempotency.body", d["body"])
        return IdempotencyRow(scope, key, d["fingerprint"], d["status"], body, d["at"])  # type: ignore[arg-type]

    def put_idempotent(self, row: IdempotencyRow) -> None:
        """Remember the answer given to a key."""
        self.mdb["idempotency"].insert_one({"_id": _key(row.scope, row.key), "fingerprint": row.fingerprint,
                                            "status": row.status,
                                            "body": seal_note(self.keys, "idempotency.body", row.body),
                                            "at": row.at})

    # -- issue 12, erasure (H4) ---------------------------------------------------------
    def erase_customer(self, customer_id: str, *, records: list[str], erasure_id: str, anon: str) -> list[str]:
        """Erase a customer: the ledger and redemptions stay, filed under ``anon`` with no reason text (so
        every total of points issued, spent and expired stays exact); facts, account, schedule,
        announcements, memberships and idempotency answers go. Returns the ids erased."""
        m = self.mdb
        ids = sorted({customer_id, *records, *self.records_of(customer_id)})
        m["ledger"].update_many({"record_id": {"$in": ids}}, {"$set": {"record_id": anon, "cause": {}}})
        m["redemptions"].update_many({"$or": [{"record_id": {"$in": ids}}, {"customer_id": {"$in": ids}}]},
                                     {"$set": {"customer_id": anon, "record_id": anon, "cancel_reason": None}})
        for name in ("purchases", "refunds", "bonuses", "tier_imports"):
            m[name].delete_many({"record_id": {"$in": ids}})
        for name in ("accounts", "checkpoints"):
            m[name].delete_many({"_id": {"$in": ids}})
        m["announcements"].delete_many({"customer_id": {"$in": ids}})
        m["memberships"].delete_many({"$or": [{"_id": {"$in": ids}}, {"customer_id": {"$in": ids}}]})
        for kind in ("redeem", "adjust"):
            for i in ids:
                m["idempotency"].delete_many({"_id": {"$regex": "^" + re.escape(_key(f"{kind}:{i}", ""))}})
        self.erase_corrections(ids)
        self.note_erased(ids, erasure_id=erasure_id)
        return ids
