"""The webhook store in the host service's MongoDB database (its own collections, the host's transactions)."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, replace

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError

from shared.storage.base import MongoDb
from shared.storage.crypto import KeyRing
from shared.webhooks.events import AlertSeen
from shared.webhooks.sealing import needs_sealing, open_secret, seal_secret
from shared.webhooks.store import Delivery, Subscription


def _delivery(doc) -> Delivery:
    return Delivery(**{k: v for k, v in doc.items() if k not in ("_id", "seq")}, delivery_id=doc["_id"])


class MongoWebhookStore:
    """Webhook collections beside the host's, written in the host's transactions; signing secrets sealed
    under the host's keyring ``keys``."""

    def __init__(self, mdb: MongoDb, *, keys: KeyRing) -> None:
        self.mdb, self.keys = mdb, keys
        self._ready = False
        self._lock = threading.Lock()

    def _col(self, name: str):
        if not self._ready:
            with self._lock:
                if not self._ready:
                    deliveries = self.mdb.database["webhook_deliveries"]
                    deliveries.create_index([("webhook_id", ASCENDING), ("event_id", ASCENDING)], unique=True)
                    deliveries.create_index([("status", ASCENDING), ("next_ms", ASCENDING)])
                    deliveries.create_index([("webhook_id", ASCENDING), ("seq", DESCENDING)])
                    deliveries.create_index([("customer_id", ASCENDING)])
                    self.mdb.database["webhook_alerts_seen"].create_index([("customer_id", ASCENDING)])
                    self._upgrade()
                    self._ready = True
        return self.mdb[name]

    def _upgrade(self) -> None:
        """Bring what an older version wrote up to date, once: deliveries learn whom they are about (from their
        body, where every event names its customer) and clear signing secrets are sealed."""
        db = self.mdb.database  # outside any transaction, like the indexes
        deliveries = db["webhook_deliveries"]
        for doc in deliveries.find({"customer_id": {"$exists": False}}, {"body": 1}):
            customer = json.loads(doc["body"]).get("data", {}).get("customer_id")
            deliveries.update_one({"_id": doc["_id"]}, {"$set": {"customer_id": customer}})
        subs = db["webhook_subscriptions"]
        for doc in subs.find({}, {"secret": 1}):
            if needs_sealing(doc["secret"]):
                subs.update_one({"_id": doc["_id"], "secret": doc["secret"]},
                                {"$set": {"secret": seal_secret(self.keys, doc["_id"], doc["secret"])}})

    def _sub(self, doc) -> Subscription:
        return Subscription(doc["_id"], doc["url"], tuple(doc["event_types"]),
                            open_secret(self.keys, doc["_id"], doc["secret"]), doc["enabled"],
                            doc.get("description"), doc["created_by"], doc["created_at"], doc["updated_at"])

    def subscription_add(self, sub: Subscription) -> None:
        """Keep a new subscription."""
        doc = asdict(sub)
        doc["_id"] = doc.pop("webhook_id")
        doc["event_types"] = list(sub.event_types)
        doc["secret"] = seal_secret(self.keys, sub.webhook_id, sub.secret)
        self._col("webhook_subscriptions").insert_one(doc)

    def subscription_put(self, sub: Subscription) -> None:
        """Replace a subscription."""
        self._col("webhook_subscriptions").update_one({"_id": sub.webhook_id}, {"$set": {
            "url": sub.url, "event_types": list(sub.event_types), "enabled": sub.enabled,
            "description": sub.description, "updated_at": sub.updated_at}})

    def subscription(self, webhook_id: str) -> Subscription | None:
        """One subscription."""
        doc = self._col("webhook_subscriptions").find_one({"_id": webhook_id})
        return self._sub(doc) if doc else None

    def subscriptions(self, *, enabled_only: bool = False) -> list[Subscription]:
        """Every subscription, oldest first."""
        query = {"enabled": True} if enabled_only else {}
        docs = self._col("webhook_subscriptions").find(query).sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        return [self._sub(d) for d in docs]

    def deliveries_add(self, deliveries: list[Delivery]) -> int:
        """Keep new deliveries; returns how many were new."""
        if not deliveries:
            return 0
        col = self._col("webhook_deliveries")
        last = col.find_one({}, sort=[("seq", DESCENDING)])
        seq = last["seq"] if last else 0
        new = 0
        for i, d in enumerate(deliveries):
            doc = asdict(d)
            doc["_id"] = doc.pop("delivery_id")
            doc["seq"] = seq + i + 1
            try:
                col.insert_one(doc)
                new += 1
            except (DuplicateKeyError, BulkWriteError):
                pass  # the same event for the same subscription: already kept
        return new

    def deliveries_due(self, *, now_ms: int, lease_ms: int, limit: int, webhook_ids: list[str]) -> list[Delivery]:
        """Take up to ``limit`` due pending deliveries of these subscriptions, leased until ``lease_ms``."""
        if not webhook_ids or limit <= 0:
            return []
        col = self._col("webhook_deliveries")
        query = {"status": "pending", "next_ms": {"$lte": now_ms}, "lease_ms": {"$lte": now_ms},
                 "webhook_id": {"$in": list(webhook_ids)}}
        out = []
        # One document at a time: find_one_and_update is what keeps two dispatchers from taking the same one.
        while len(out) < limit:
            doc = col.find_one_and_update(query, {"$set": {"lease_ms": lease_ms}},
                                          sort=[("next_ms", ASCENDING), ("seq", ASCENDING)],
                                          return_document=ReturnDocument.AFTER)
            if doc is None:
                break
            out.append(_delivery(doc))
        return out

    def delivery_update(self, delivery: Delivery) -> None:
        """Record an attempt's outcome."""
        doc = asdict(replace(delivery))
        doc.pop("delivery_id")
        for fixed in ("webhook_id", "event_id", "event_type", "body", "created_at", "customer_id"):
            doc.pop(fixed)
        self._col("webhook_deliveries").update_one({"_id": delivery.delivery_id}, {"$set": doc})

    def delivery(self, delivery_id: str) -> Delivery | None:
        """One delivery."""
        doc = self._col("webhook_deliveries").find_one({"_id": delivery_id})
        return _delivery(doc) if doc else None

    def deliveries(self, webhook_id: str, *, status: str | None = None, offset: int = 0,
                   limit: int = 50) -> tuple[list[Delivery], int]:
        """A subscription's deliveries, newest first, and how many there are."""
        query: dict = {"webhook_id": webhook_id}
        if status is not None:
            query["status"] = status
        col = self._col("webhook_deliveries")
        docs = col.find(query).sort("seq", DESCENDING).skip(offset).limit(limit)
        return [_delivery(d) for d in docs], col.count_documents(query)

    def customers_erase(self, customer_ids: list[str]) -> int:
        """Delete every delivery about these customer or record ids and their alerts seen (in the caller's
        transaction); returns how many deliveries."""
        ids = sorted(set(customer_ids))
        if not ids:
            return 0
        self._col("webhook_alerts_seen").delete_many({"customer_id": {"$in": ids}})
        return self._col("webhook_deliveries").delete_many({"customer_id": {"$in": ids}}).deleted_count

    def deliveries_purge(self, *, before: str) -> int:
        """Forget delivered and dead deliveries last tried before ``before``."""
        return self._col("webhook_deliveries").delete_many(
            {"status": {"$in": ["delivered", "dead"]}, "updated_at": {"$lt": before}}).deleted_count

    def alerts_seen(self, alert_ids: list[str]) -> dict[str, AlertSeen]:
        """The last change seen of these alerts."""
        docs = self._col("webhook_alerts_seen").find({"_id": {"$in": sorted(set(alert_ids))}})
        return {d["_id"]: AlertSeen(d["_id"], d["status"], d["severity"], d.get("customer_id")) for d in docs}

    def alerts_seen_put(self, *, seen: list[AlertSeen], forget: list[str]) -> None:
        """Keep the last change seen of alerts; forget resolved ones."""
        col = self._col("webhook_alerts_seen")
        for s in seen:
            col.replace_one({"_id": s.alert_id}, {"status": s.status, "severity": s.severity,
                                                  "customer_id": s.customer_id}, upsert=True)
        if forget:
            col.delete_many({"_id": {"$in": forget}})
