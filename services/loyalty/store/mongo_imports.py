"""Loyalty's MongoDB adapter, issue 14's member-import facts: opening lots (ledger movements posted once) and
imported tiers (a private mixin of the adapter)."""

from __future__ import annotations

from services.loyalty.domain.model import Entry, TierImport
from services.loyalty.store import seal_cause
from shared.clock import iso_utc, parse_iso


class MongoImports:
    """Mixed into the mongo adapter; uses the adapter's database and keyring."""

    def create_import_indexes(self) -> None:
        """The index :meth:`tier_imports_of` relies on."""
        self.mdb["tier_imports"].create_index("record_id")

    def add_openings(self, entries: list[Entry]) -> list[Entry]:
        """Post opening lots not posted before (by entry id); returns those posted now."""
        wanted = list({e.entry_id: e for e in entries}.values())
        held = {d["_id"] for d in self.mdb["ledger"].find({"_id": {"$in": [e.entry_id for e in wanted]}},
                                                          {"_id": 1})}
        fresh = [e for e in wanted if e.entry_id not in held]
        if fresh:
            self.mdb["ledger"].insert_many([
                {"_id": e.entry_id, "record_id": e.record_id, "bucket": e.bucket, "rule": e.rule, "kind": e.kind,
                 "points": e.points, "effective_at": e.effective_at, "posted_at": e.posted_at,
                 "cause": seal_cause(e.cause, self.keys)} for e in fresh])
        return fresh

    def add_tier_imports(self, rows: list[TierImport]) -> list[TierImport]:
        """Keep imported tiers not kept before (by source and id); returns those kept now."""
        fresh = []
        for r in rows:
            res = self.mdb["tier_imports"].update_one(
                {"_id": f"{r.source}\0{r.id}"},
                {"$setOnInsert": {"source": r.source, "id": r.id, "record_id": r.record_id, "tier": r.tier,
                                  "since": iso_utc(r.since),
                                  "imported_at": iso_utc(r.imported_at) if r.imported_at else None}}, upsert=True)
            if res.upserted_id is not None:
                fresh.append(r)
        return fresh

    def tier_imports_of(self, record_ids: list[str]) -> list[TierImport]:
        """The imported tiers of these records."""
        docs = self.mdb["tier_imports"].find({"record_id": {"$in": sorted(set(record_ids))}})
        out = [TierImport(d["source"], d["id"], d["record_id"], d["tier"], parse_iso(d["since"]),
                          parse_iso(d["imported_at"]) if d.get("imported_at") else None) for d in docs]
        return sorted(out, key=lambda t: (t.since, t.source, t.id))
