"""Issue 14, a member file's points lots: a lot belongs to a member of the member file or to a customer the
platform knows already, whichever notation its phone is written in; a lot for anyone else is rejected with its
line and reason (not turned into a bare customer holding only points), costs no other row, and stays rejected
when the files are imported again or the import resumes after a crash."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.identity.handlers import imports
from tests.integration.flows.support import ADMIN, event
from tests.integration.flows.test_member_import import _noon, _today, run_job

PLATFORM_PHONE, PLATFORM_MEMBER_ID = "13961728470", "M-plat"
UNKNOWN_PHONE = "13961728479"
REJECTED_MEMBER_PHONE = "13961728473"  # in the member file, but its row is rejected (a bad e-mail)
UNKNOWN = "no member with this phone or member_id in the member file or the platform"


def _files(tmp_path: Path) -> tuple[Path, Path]:
    members, points = tmp_path / "members.csv", tmp_path / "points.csv"
    members.write_text("phone,member_id,name,email\n"
                       "13961728471,M-f1,Wang,\n"
                       "13961728472,M-f2,Li,\n"
                       f"{REJECTED_MEMBER_PHONE},M-f3,Zhao,not-an-email\n", encoding="utf-8")
    day = (_today() - timedelta(days=10)).isoformat()
    points.write_text("phone,member_id,points,earned_at\n"
                      f"+86 139-6172-8471,,100,{day}\n"  # a file member, in another notation
                      f",M-f2,200,{day}\n"  # a file member by member_id, not on the platform yet
                      f"{PLATFORM_PHONE},,300,{day}\n"  # a customer the platform knows, not in the file
                      f"{UNKNOWN_PHONE},,400,{day}\n"  # nobody
                      f",{PLATFORM_MEMBER_ID},50,{day}\n"  # a platform customer by member_id
                      f"{REJECTED_MEMBER_PHONE},,70,{day}\n"  # a member row rejected, so nobody
                      f"139 6172 8472,,5,{day}\n", encoding="utf-8")
    return members, points


def _platform_customers(flow) -> None:
    when = _noon() - timedelta(days=30)
    flow.ingest(event("crm.profile", when, {"phone": PLATFORM_PHONE}, name="Zhou"),
                event("crm.profile", when, {"phone": "13961728478", "member_id": PLATFORM_MEMBER_ID}, name="Qian"))


def _balances(flow) -> dict[str, Any]:
    store = flow.platform["identity"].deps.store
    idents = [("phone", f"+86{p}") for p in ("13961728471", "13961728472", PLATFORM_PHONE, "13961728478",
                                             UNKNOWN_PHONE, REJECTED_MEMBER_PHONE)]
    found = store.find(idents)
    return {value: flow.account(found[(kind, value)].root_id)["points_balance"] if (kind, value) in found else None
            for kind, value in idents}


WANT = {"+8613961728471": 100, "+8613961728472": 205, f"+86{PLATFORM_PHONE}": 300, "+8613961728478": 50,
        f"+86{UNKNOWN_PHONE}": None, f"+86{REJECTED_MEMBER_PHONE}": None}


def _errors(flow, job_id: str) -> list[tuple[str, int, str, str]]:
    r = flow.platform["identity"].api(ADMIN).get(f"/v1/imports/{job_id}", params={"limit": 100})
    assert r.status_code == 200, r.text
    return [(e["file"], e["line"], e["column"], e["reason"]) for e in r.json()["errors"]]


REJECTED = [("members", 4, "email", "not an e-mail address"), ("points", 5, "member", UNKNOWN),
            ("points", 7, "member", UNKNOWN)]


def test_lots_of_file_members_and_platform_customers_are_imported_and_a_lot_of_nobody_is_rejected(flow, tmp_path):
    flow.set_clocks(_noon())
    _platform_customers(flow)
    members, points = _files(tmp_path)
    job = run_job(flow, "members", {"members": members, "points": points})
    assert job.status == "done", job.error
    assert (job.counts["points.rows"], job.counts["points.imported"], job.counts["points.rejected"]) == (7, 5, 2)
    assert _errors(flow, job.job_id) == REJECTED
    flow.platform.settle(timeout=120)
    assert _balances(flow) == WANT  # no bare customer for the unknown phone or the rejected member

    again = run_job(flow, "members", {"members": members, "points": points})
    assert again.job_id == job.job_id and again.status == "done" and again.counts == job.counts
    assert _errors(flow, job.job_id) == REJECTED
    flow.platform.settle(timeout=120)
    assert _balances(flow) == WANT


@pytest.mark.parametrize("crash_at", [4, 6])  # the points file's first chunk; a later one
def test_an_import_that_crashed_in_its_points_file_resumes_knowing_the_member_file(flow, tmp_path, crash_at):
    # One row a chunk: members are chunks 1 to 3, the points file's lots 4 on. The resumed run starts in the
    # points file, so it must know the member file's members again (identity has not consumed them yet).
    flow.set_clocks(_noon())
    _platform_customers(flow)
    members, points = _files(tmp_path)
    deps = flow.platform["identity"].deps
    job = imports.start("members", {"members": str(members), "points": str(points)}, options={}, by="test",
                        origin="test", deps=deps)
    chunks = {"n": 0}

    def crashing(messages):
        chunks["n"] += 1
        if chunks["n"] == crash_at:
            raise RuntimeError("killed")
        deps.publish(messages)

    with pytest.raises(RuntimeError):
        imports.run(job.job_id, deps=deps, publish=crashing, chunk_rows=1)
    held = deps.store.import_job(job.job_id)
    assert held.status == "running" and held.progress["members"] == 4 and 0 < held.progress.get("points", 1) < 8
    done = imports.run(job.job_id, deps=deps, publish=deps.publish, chunk_rows=1)
    assert done.status == "done", done.error
    assert (done.counts["points.rows"], done.counts["points.imported"], done.counts["points.rejected"]) == (7, 5, 2)
    assert _errors(flow, job.job_id) == REJECTED
    flow.platform.settle(timeout=120)
    assert _balances(flow) == WANT
