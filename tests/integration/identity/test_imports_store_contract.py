"""Identity's store contract for member imports (issue 14): jobs with their progress and counts, rejected rows
kept once each, and the home store a member file declares, on every backend."""

from __future__ import annotations

from dataclasses import replace

from services.identity.store import AssignmentRow, HomeStoreRow, ImportJob, ImportRowError


def _job(job_id: str = "imp_1", status: str = "running", created: str = "2026-12-05T01:00:00Z") -> ImportJob:
    # The file's lines are stored with it: a resumed job dates each member row as the first run did.
    files = {"members": {"path": "/x/m.csv", "sha256": "ab", "lines": 1001}}
    return ImportJob(job_id, "members", status, files, {"origin": "api"}, {}, {}, created, created, "li.wei")


def test_a_job_keeps_its_progress_and_counts_and_unfinished_ones_are_listed(store):
    with store.transaction():
        store.put_import_job(_job("imp_1"))
        store.put_import_job(_job("imp_0", created="2026-12-05T00:00:00Z"))
        store.put_import_job(_job("imp_2", status="done"))
    assert store.import_job("imp_9") is None
    assert [j.job_id for j in store.unfinished_import_jobs()] == ["imp_0", "imp_1"]
    moved = replace(_job("imp_1"), progress={"members": 2001}, counts={"members.rows": 2000, "events": 5000},
                    updated_at="2026-12-05T01:01:00Z")
    with store.transaction():
        store.put_import_job(moved)
    assert store.import_job("imp_1") == moved
    with store.transaction():
        store.put_import_job(replace(moved, status="failed", error="members: the file cannot be read"))
    assert store.import_job("imp_1").error == "members: the file cannot be read"
    assert [j.job_id for j in store.unfinished_import_jobs()] == ["imp_0"]


def test_rejected_rows_are_kept_once_each_in_file_and_line_order(store):
    rows = [ImportRowError("imp_1", "points", 3, "points", "must be a whole number"),
            ImportRowError("imp_1", "members", 12, "phone", "is not a valid number"),
            ImportRowError("imp_1", "members", 12, "email", "not an e-mail address"),
            ImportRowError("imp_2", "members", 2, "phone", "needs one of phone, member_id, wechat_openid")]
    with store.transaction():
        store.add_import_errors(rows)
        store.add_import_errors(rows[:2])  # a resumed job reports a chunk's rows again
    assert store.import_errors("imp_1", offset=0, limit=10) == [rows[2], rows[1], rows[0]]
    assert store.import_errors("imp_1", offset=1, limit=1) == [rows[1]]
    assert store.import_errors("imp_3", offset=0, limit=10) == []


def test_the_latest_declared_home_store_over_a_customers_records_wins(store):
    with store.transaction():
        for rid in ("c_a", "c_a2", "c_b", "c_n"):
            store.create_record(rid, phone=None, at="T1")
        store.merge("c_a", "c_a2", merge_id="m1", cause={}, at="T2")
        store.add_home_stores([HomeStoreRow("c_a", "S01", 100), HomeStoreRow("c_a2", "S02", 200),
                               HomeStoreRow("c_b", "S03", 100)])
        # Older and equal-time-lower-id declarations change nothing, whatever order they arrive in.
        store.add_home_stores([HomeStoreRow("c_b", "S00", 100), HomeStoreRow("c_b", "S09", 50)])
    assert store.home_stores_of(["c_a", "c_b", "c_n"]) == {"c_a": "S02", "c_b": "S03"}
    with store.transaction():
        store.add_home_stores([HomeStoreRow("c_b", "S04", 300)])
    assert store.home_stores_of(["c_b"]) == {"c_b": "S04"}


def test_the_stores_the_owner_rule_reads_come_in_one_read_per_customer(store):
    # Issue 13: the store staff assigned and the declared home store, read together (they were two queries).
    with store.transaction():
        for rid in ("c_a", "c_a2", "c_b", "c_c", "c_n"):
            store.create_record(rid, phone=None, at="T1")
        store.merge("c_a", "c_a2", merge_id="m1", cause={}, at="T2")
        store.add_home_stores([HomeStoreRow("c_a", "S01", 100), HomeStoreRow("c_a2", "S02", 200),
                               HomeStoreRow("c_c", "S05", 100)])
        store.put_assignment(AssignmentRow("c_a", "store", "S09", "k1", "T3"))
        store.put_assignment(AssignmentRow("c_a2", "store", "S08", "k1", "T3"))  # waits for an unmerge
        store.put_assignment(AssignmentRow("c_b", "store", "S07", "k1", "T3"))
        store.put_assignment(AssignmentRow("c_c", "manager", "am-7", "k1", "T3"))  # not a store
    assert store.named_stores_of(["c_a", "c_b", "c_c", "c_n", "c_a"]) == {
        "c_a": ("S09", "S02"), "c_b": ("S07", None), "c_c": (None, "S05")}
    assert store.named_stores_of([]) == {}
