"""Identity's MongoDB adapter, signed-out staff tokens: the ids of revoked tokens until they would have expired
anyway (a private mixin of the adapter)."""

from __future__ import annotations


class MongoTokens:
    """Mixed into the mongo adapter; uses the adapter's database."""

    def create_token_indexes(self) -> None:
        """The index the purge of expired ids relies on (the id is ``_id``)."""
        self.mdb["revoked_tokens"].create_index("expires_at")

    def revoke_token(self, token_id: str, *, expires_at: int, at: str, now: int) -> None:
        """Keep ``token_id`` as signed out (again: no change), and forget ids whose tokens expired by ``now``."""
        self.mdb["revoked_tokens"].update_one(
            {"_id": token_id}, {"$setOnInsert": {"expires_at": expires_at, "revoked_at": at}}, upsert=True)
        self.mdb["revoked_tokens"].delete_many({"expires_at": {"$lte": now}})

    def token_revoked(self, token_id: str) -> bool:
        """Whether ``token_id`` was signed out."""
        return self.mdb["revoked_tokens"].find_one({"_id": token_id}, {"_id": True}) is not None

    def revoked_tokens(self, *, now: int) -> list[tuple[str, int]]:
        """The signed-out ids whose tokens are still unexpired at ``now``, with their expiry, by id."""
        docs = self.mdb["revoked_tokens"].find({"expires_at": {"$gt": now}}).sort("_id", 1)
        return [(d["_id"], int(d["expires_at"])) for d in docs]
