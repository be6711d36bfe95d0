"""Identity's MongoDB adapter, issue 14's import operations: import jobs, their rejected rows, and the home store
a member file declared (a private mixin of the adapter)."""

from __future__ import annotations

from pymongo import ASCENDING, UpdateMany

from services.identity.store import HomeStoreRow, ImportJob, ImportRowError

_FIELDS = ("kind", "status", "files", "options", "progress", "counts", "created_at", "updated_at", "by", "error")


def _job(doc: dict) -> ImportJob:
    return ImportJob(doc["_id"], *(doc.get(f) for f in _FIELDS))


class MongoImports:
    """Mixed into the mongo adapter; uses the adapter's database."""

    def create_import_indexes(self) -> None:
        """The indexes the import operations rely on (call once when the store opens)."""
        self.mdb["import_jobs"].create_index("status")
        self.mdb["import_errors"].create_index([("job_id", ASCENDING), ("file", ASCENDING), ("line", ASCENDING),
                                                ("column", ASCENDING)], unique=True)
        self.mdb["home_stores"].create_index("record_id", unique=True)

    def put_import_job(self, job: ImportJob) -> None:
        """Create or replace a job (its progress and counts move together, in the caller's transaction)."""
        doc = {f: getattr(job, f) for f in _FIELDS}
        self.mdb["import_jobs"].replace_one({"_id": job.job_id}, doc, upsert=True)

    def import_job(self, job_id: str) -> ImportJob | None:
        """One job, or None."""
        doc = self.mdb["import_jobs"].find_one({"_id": job_id})
        return _job(doc) if doc else None

    def unfinished_import_jobs(self) -> list[ImportJob]:
        """Jobs still running (a process stopped in the middle of them), oldest first."""
        docs = self.mdb["import_jobs"].find({"status": "running"}).sort([("created_at", ASCENDING),
                                                                          ("_id", ASCENDING)])
        return [_job(d) for d in docs]

    def add_import_errors(self, rows: list[ImportRowError]) -> None:
        """Keep rejected rows (the same row, line and column again changes nothing: a resumed job repeats some)."""
        ops = [UpdateMany({"job_id": r.job_id, "file": r.file, "line": r.line, "column": r.column},
                         {"$setOnInsert": {"reason": r.reason}}, upsert=True) for r in rows]
        if ops:
            self.mdb["import_errors"].bulk_write(ops, ordered=False)

    def import_errors(self, job_id: str, *, offset: int, limit: int) -> list[ImportRowError]:
        """A job's rejected rows by file and line."""
        docs = self.mdb["import_errors"].find({"job_id": job_id}).sort(
            [("file", ASCENDING), ("line", ASCENDING), ("column", ASCENDING)]).skip(offset).limit(limit)
        return [ImportRowError(d["job_id"], d["file"], d["line"], d["column"], d["reason"]) for d in docs]

    def add_home_stores(self, rows: list[HomeStoreRow]) -> None:
        """Keep each record's latest declared home store (equal times go to the higher store id)."""
        ops = []
        for r in rows:
            doc, key = {"store_id": r.store_id, "time_ms": r.time_ms}, {"record_id": r.record_id}
            ops.append(UpdateMany(key, {"$setOnInsert": doc}, upsert=True))
            held_older = {"$or": [{"time_ms": {"$lt": r.time_ms}},
                                  {"time_ms": r.time_ms, "store_id": {"$lt": r.store_id}}]}
            ops.append(UpdateMany({**key, **held_older}, {"$set": doc}))
        if ops:
            self.mdb["home_stores"].bulk_write(ops, ordered=True)

    def home_stores_of(self, root_ids: list[str]) -> dict[str, str]:
        """Per active customer with a declared home store, the latest one over every record it holds."""
        root_of = {d["_id"]: d["root_id"] for d in self.mdb["records"].find(
            {"root_id": {"$in": list(dict.fromkeys(root_ids))}}, {"_id": 1, "root_id": 1})}
        latest: dict[str, tuple[int, str]] = {}
        for d in self.mdb["home_stores"].find({"record_id": {"$in": list(root_of)}}, {"_id": False}):
            root, seen = root_of[d["record_id"]], (d["time_ms"], d["store_id"])
            latest[root] = max(latest.get(root, seen), seen)
        return {root: store for root, (_, store) in latest.items()}

    def named_stores_of(self, root_ids: list[str]) -> dict[str, tuple[str | None, str | None]]:
        """Per active customer with either, (the store staff assigned it, the latest home store a member file
        declared over every record it holds): what the owner rule reads besides purchases, in one round trip
        (the customer's records with their declarations and, on the customer's own record, its assignments)."""
        assigned: dict[str, str] = {}
        latest: dict[str, tuple[int, str]] = {}
        for d in self.mdb["records"].aggregate([
                {"$match": {"root_id": {"$in": list(dict.fromkeys(root_ids))}}},
                {"$project": {"_id": 1, "root_id": 1}},
                {"$lookup": {"from": "home_stores", "localField": "_id", "foreignField": "record_id",
                             "as": "declared"}},
                {"$lookup": {"from": "assignments", "localField": "_id", "foreignField": "customer_id",
                             "as": "assigned"}}]):
            root = d["root_id"]
            for h in d["declared"]:
                seen = (h["time_ms"], h["store_id"])
                latest[root] = max(latest.get(root, seen), seen)
            if d["_id"] == root:  # a merged-away record's assignment waits for an unmerge
                assigned.update((root, a["value"]) for a in d["assigned"] if a["kind"] == "store")
        return {root: (assigned.get(root), latest[root][1] if root in latest else None)
                for root in assigned.keys() | latest.keys()}
