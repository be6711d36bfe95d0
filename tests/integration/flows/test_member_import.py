"""Issue 14, member import: a brand's member file with points lots, tiers, consents and home stores goes in
through the import job and every service ends with exactly what the file says (expected values computed
here from the file, by the domain's rule: a lot expires at the end of the 365th day after its earn day, in
Shanghai time; a tier holds until the next monthly review); importing it again changes nothing; bad rows
are each reported by line and cost no good row; an interrupted or killed import resumes and ends exact."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crm.bench.imports import MEMBER_HEADER, write_members
from services.identity.handlers import imports
from shared.privacy import normalize_phone
from tests.integration.flows.support import ADMIN, SHANGHAI, Flow

MEMBERS = int(os.environ.get("CRM_TEST_IMPORT_MEMBERS", "10000"))


def _today() -> date:
    return datetime.now(SHANGHAI).date()


def _noon() -> datetime:
    return datetime.combine(_today(), datetime.min.time(), SHANGHAI) + timedelta(hours=12)


def expected_from(members: Path, points: Path, *, now: datetime) -> dict[str, dict[str, Any]]:
    """Per phone (E.164): the balance, tier, SMS consent and home store the files say, computed here."""
    out: dict[str, dict[str, Any]] = {}
    by_member_id: dict[str, str] = {}
    with open(members, encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            phone = normalize_phone(row["phone"])
            consent = {"yes": True, "1": True, "no": False}.get(row["sms_consent"])
            out[phone] = {"balance": 0, "tier": row["tier"] or None, "sms": consent, "store": row["home_store"]}
            by_member_id[row["member_id"]] = phone
    with open(points, encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            phone = normalize_phone(row["phone"]) if row["phone"] else by_member_id[row["member_id"]]
            earned = date.fromisoformat(row["earned_at"])
            # Expires at the midnight that ends the 365th day after the earn day (Shanghai).
            ends = datetime.combine(earned + timedelta(days=366), datetime.min.time(), SHANGHAI)
            if now < ends:
                out[phone]["balance"] += int(row["points"])
    return out


def actual_of(flow: Flow, phones: list[str]) -> dict[str, dict[str, Any]]:
    """What identity and loyalty hold for these phones, read from their stores in bulk."""
    ident, loyal = flow.platform["identity"].deps.store, flow.platform["loyalty"].deps.store
    found = ident.find([("phone", p) for p in phones])
    roots = {p: found[("phone", p)].root_id for p in phones if ("phone", p) in found}
    accounts = loyal.accounts_of(sorted(set(roots.values())))
    owners = loyal.owners_of(sorted(set(roots.values())))
    out = {}
    for p, root in roots.items():
        consents = {v.field: v.value for v in ident.attributes(ident.group(root)) if v.field == "consent.sms"}
        acc = accounts.get(root)
        out[p] = {"balance": acc.balance if acc else 0, "tier": acc.tier if acc else None,
                  "sms": consents.get("consent.sms"), "store": owners.get(root)}
    return out


def run_job(flow: Flow, kind: str, files: dict[str, Path], **kw: Any) -> Any:
    deps = flow.platform["identity"].deps
    job = imports.start(kind, {n: str(p) for n, p in files.items()}, options=kw.pop("options", {}), by="test",
                        origin="test", deps=deps)
    return imports.run(job.job_id, deps=deps, publish=kw.pop("publish", deps.publish), **kw)


def test_members_with_lots_tiers_and_consents_end_exactly_as_the_file_says_and_again_changes_nothing(flow, tmp_path):
    noon = _noon()  # read once: a test that runs past midnight in Shanghai still expects what the clocks were set to
    flow.set_clocks(noon)
    members, points, phones = write_members(tmp_path, MEMBERS, lots=1.5, today=noon.date())
    started = time.monotonic()
    job = run_job(flow, "members", {"members": members, "points": points})
    assert job.status == "done"
    assert job.counts["members.imported"] == MEMBERS and job.counts.get("members.rejected", 0) == 0
    assert job.counts.get("points.rejected", 0) == 0
    flow.platform.settle(timeout=900)
    print(f"{MEMBERS} members imported and settled in {time.monotonic() - started:.0f} s")
    want = expected_from(members, points, now=noon)
    got = actual_of(flow, list(want))
    assert got == want
    tiers = defaultdict(int)
    for w in want.values():
        tiers[w["tier"]] += 1
    assert set(tiers) == {None, "A", "B", "C"} and sum(1 for w in want.values() if w["sms"] is None) > 0
    assert 0 < sum(1 for w in want.values() if w["balance"]) < len(want)  # some lots expired, some held

    # Seen through the APIs a user reads, for a few members: the account and the single customer view.
    sample = [normalize_phone(p) for p in phones[:: max(1, MEMBERS // 20)]]
    customers = [flow.customer_id(phone=p) for p in sample]
    for p, c in zip(sample, customers, strict=True):
        account, view = flow.account(c), flow.view(c)
        assert account["points_balance"] == want[p]["balance"]
        assert account["tier"] == want[p]["tier"]
        assert view["consents"].get("sms", {}).get("granted") == want[p]["sms"]
        assert view["stats"]["home_store"] == want[p]["store"]
    before = flow.snapshot(customers)

    again = run_job(flow, "members", {"members": members, "points": points})
    assert again.job_id == job.job_id and again.status == "done" and again.counts == job.counts
    flow.platform.settle(timeout=900)
    assert actual_of(flow, list(want)) == want
    assert flow.snapshot(customers) == before


def test_tiers_held_since_years_ago_are_held_from_the_import_to_the_next_review(flow, tmp_path):
    # A brand bringing its members of 2021: their tiers hold, not dropped at the review after tier_since.
    flow.set_clocks(_noon())
    members = tmp_path / "old_tiers.csv"
    members.write_text("\n".join([MEMBER_HEADER, "13812360001,M-o1,,Wang,F,,,,2019-03-01,SH-001,A,2021-06-01,yes",
                                   "13812360002,M-o2,,Li,F,,,,2020-05-04,SH-001,B,,no",
                                   "13812360003,M-o3,,Zhao,M,,,,,SH-002,C,2024/2/29,"]) + "\n", encoding="utf-8")
    job = run_job(flow, "members", {"members": members})
    assert job.status == "done" and job.counts["members.imported"] == 3
    flow.platform.settle(timeout=300)
    for phone, tier in (("+8613812360001", "A"), ("+8613812360002", "B"), ("+8613812360003", "C")):
        assert flow.account(flow.customer_id(phone=phone))["tier"] == tier


def _bad_rows(tmp_path: Path, good: int) -> tuple[Path, dict[int, str], list[str]]:  # file, bad lines, phones
    """A member file of ``good`` good rows with 100 bad ones among them; returns the bad lines and columns."""
    members, _, phones = write_members(tmp_path, good, lots=0, today=_today())
    rows = members.read_text(encoding="utf-8").splitlines()
    header, body = rows[0], rows[1:]
    faults = [
        ("phone", "12345,M-x{n},,Wang,F,1990-01-01,a@b.cn,SH,2020-01-01,SH-001,,,yes"),
        ("birthday", "1381230{n:04d},,,Li,F,1990-02-30,,,,,,,"),
        ("email", "1381231{n:04d},,,Li,F,,not-an-email,,,,,,"),
        ("sms_consent", "1381232{n:04d},,,Li,F,,,,,,,,maybe"),
        ("join_date", "1381233{n:04d},,,Li,F,,,,2999-01-01,,,,"),
        ("phone", ",,,Nobody,F,,,,,,,,"),
        ("tier", "1381234{n:04d},,,Li,F,,,,,,Gold Plus,,"),
        ("-", "1381235{n:04d},,,too,few,values"),
    ]
    out, bad = [header], {}
    step = max(1, len(body) // 100)
    for i in range(100):
        column, text = faults[i % len(faults)]
        line_text = text.format(n=i)
        out += body[i * step:(i + 1) * step]
        out.append(line_text)
        bad[len(out)] = column  # the file's line number (the header is line 1)
    out += body[100 * step:]
    members.write_text("\n".join(out) + "\n", encoding="utf-8")
    return members, bad, phones


def test_bad_rows_are_each_reported_with_their_line_and_every_good_row_is_imported(flow, tmp_path):
    flow.set_clocks(_noon())
    members, bad, phones = _bad_rows(tmp_path, 900)
    admin = flow.platform["identity"].api(ADMIN)
    with open(members, "rb") as fh:
        r = admin.post("/v1/imports", files={"members": ("members.csv", fh, "text/csv")})
    assert r.status_code == 202, r.text
    import_id = r.json()["import_id"]
    deadline = time.monotonic() + 120
    while (job := admin.get(f"/v1/imports/{import_id}", params={"limit": 1000}).json())["status"] == "running":
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    assert job["status"] == "done", job
    assert job["counts"]["members.rows"] == 1000
    assert job["counts"]["members.imported"] == 900 and job["counts"]["members.rejected"] == 100
    assert {e["line"]: e["column"] for e in job["errors"]} == bad
    for e in job["errors"]:
        assert e["reason"] and e["file"] == "members"
    text = repr(job)
    assert "Gold Plus" not in text and "not-an-email" not in text
    # The bad phone standing alone: not as part of a hexadecimal id or a timestamp's microseconds.
    assert re.search(r"(?<![0-9a-fA-F])12345(?![0-9a-fA-F])", text) is None
    assert flow.platform["identity"].api("flows-operator").get(f"/v1/imports/{import_id}").status_code == 403
    flow.platform.settle(timeout=300)
    found = flow.platform["identity"].deps.store.find([("phone", normalize_phone(p)) for p in phones])
    assert len(found) == 900


def test_an_import_interrupted_half_way_resumes_and_ends_exact(flow, tmp_path):
    noon = _noon()  # read once, as above
    flow.set_clocks(noon)
    members, points, _ = write_members(tmp_path, 1500, lots=2, today=noon.date())
    deps = flow.platform["identity"].deps
    job = imports.start("members", {"members": str(members), "points": str(points)}, options={}, by="test",
                        origin="test", deps=deps)
    chunks = {"n": 0}

    def crashing(messages):
        deps.publish(messages)  # the broker has them, and then the process dies before the progress is written
        chunks["n"] += 1
        if chunks["n"] == 8:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        imports.run(job.job_id, deps=deps, publish=crashing, chunk_rows=200)
    held = deps.store.import_job(job.job_id)
    assert held.status == "running" and held.progress == {"members": 1401} and held.counts["members.rows"] == 1400
    done = imports.run(job.job_id, deps=deps, publish=deps.publish, chunk_rows=200)
    assert done.status == "done" and done.counts["members.rows"] == 1500 and done.counts["points.rows"] > 2000
    flow.platform.settle(timeout=300)
    want = expected_from(members, points, now=noon)
    assert actual_of(flow, list(want)) == want


def test_a_command_line_import_killed_half_way_and_run_again_ends_exact(flow, tmp_path):
    noon = _noon()  # read once, as above
    flow.set_clocks(noon)
    members, points, _ = write_members(tmp_path, 3000, lots=1, today=noon.date())
    settings = flow.platform.settings
    env = {**os.environ, "CRM_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "CRM_DATA_DIR": settings.data_dir,
           "CRM_PSEUDONYM_SECRET": settings.pseudonym_secret.get_secret_value()}
    command = [sys.executable, "-m", "crm.cli", "import", "members", str(members), "--points", str(points),
               "--chunk", "100", "--quiet"]
    deps = flow.platform["identity"].deps
    job_id = imports.job_id_for("members", {"members": imports.file_digest(members),
                                            "points": imports.file_digest(points)}, {})
    proc = subprocess.Popen(command, env=env, cwd=Path(__file__).parents[3])
    deadline = time.monotonic() + 120
    while (held := deps.store.import_job(job_id)) is None or held.progress.get("members", 0) < 1500:
        assert proc.poll() is None, "the import ended before it could be killed"
        assert time.monotonic() < deadline, held
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed = deps.store.import_job(job_id)
    assert killed.status == "running" and 1500 <= killed.progress["members"] < 3001
    done = subprocess.run(command, env=env, cwd=Path(__file__).parents[3], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert deps.store.import_job(job_id).status == "done"
    want = expected_from(members, points, now=noon)
    # The command published to the broker itself: pump until the platform shows what the files say.
    flow.platform.pump_until(lambda: actual_of(flow, list(want)) == want, timeout=300, what="the imported state")


def test_historical_orders_with_their_own_column_names_become_purchases(flow, tmp_path):
    flow.set_clocks(_noon())
    orders = tmp_path / "orders.csv"
    day = _today() - timedelta(days=40)
    orders.write_text("no,mobile,total,paid,shop\n"
                      f"T-1,139 6172 8450,268.00,{day.isoformat()},SH-001\n"
                      f"T-2,+86 13961728450,100.5,{day.isoformat()}T19:30:00+08:00,SH-002\n"
                      f"T-3,1,5.00,{day.isoformat()},SH-001\n"
                      f"T-1,139 6172 8450,268.00,{day.isoformat()},SH-001\n", encoding="utf-8")
    job = run_job(flow, "orders", {"orders": orders}, options={"columns": {
        "phone": "mobile", "amount": "total", "date": "paid", "store": "shop", "order": "no"}})
    assert job.status == "done" and job.counts["orders.imported"] == 3 and job.counts["orders.rejected"] == 1
    errors = flow.platform["identity"].deps.store.import_errors(job.job_id, offset=0, limit=10)
    assert [(e.line, e.column) for e in errors] == [(4, "mobile")]
    flow.platform.settle()
    customer = flow.customer_id(phone="13961728450")
    stats = flow.view(customer)["stats"]
    # T-1 twice is one order (its id is the order number).
    assert stats["purchase_count"] == 2 and stats["total_spend"] == "368.50" and stats["purchase_days"] == 1
    assert flow.account(customer)["points_balance"] == 368


def test_only_a_company_wide_admin_starts_or_reads_an_import(broker, tmp_path):
    from shared.settings import Settings
    from tests.integration.flows.support import running_flow

    settings = Settings(_env_file=None, kafka_bootstrap=broker, data_dir=str(tmp_path),
                        api_keys=f"{ADMIN}:admin,op:operator,s01-admin:admin@store=S01",
                        pseudonym_secret="flows-test-secret-0123456789")
    members = tmp_path / "m.csv"
    members.write_text("phone\n13961728450\n", encoding="utf-8")
    with running_flow(settings) as flow:
        identity = flow.platform["identity"]
        for key, status, code in (("op", 403, "forbidden"), ("s01-admin", 403, "forbidden_scope")):
            with open(members, "rb") as fh:
                r = identity.api(key).post("/v1/imports", files={"members": ("m.csv", fh, "text/csv")})
            assert (r.status_code, r.json()["error"]["code"]) == (status, code)
            r = identity.api(key).get("/v1/imports/imp_x")
            assert (r.status_code, r.json()["error"]["code"]) == (status, code)
        assert identity.api(ADMIN).get("/v1/imports/imp_x").status_code == 404
        r = identity.api(ADMIN).post("/v1/imports", files={"points": ("p.csv", b"phone,points,earned_at\n")})
        assert (r.status_code, r.json()["error"]["code"]) == (422, "import_files")


def test_a_member_file_excel_saved_as_gbk_imports_like_its_utf8_twin(flow, tmp_path):
    flow.set_clocks(_noon())
    members = tmp_path / "members-gbk.csv"
    members.write_bytes("phone,name,city,join_date\r\n139 6172 8451,王芳,上海,2023/1/5\r\n"
                        "13961728452,李四,北京,2023/2/1\r\n".encode("gbk"))
    job = run_job(flow, "members", {"members": members})
    assert (job.status, job.error, job.counts["members.imported"]) == ("done", None, 2)
    flow.platform.settle()
    view = flow.platform["identity"].api(ADMIN).get(f"/v1/customers/{flow.customer_id(phone='13961728451')}",
                                                    params={"reveal": "true"}).json()
    assert view["attributes"]["name"] == "王芳" and view["attributes"]["city"] == "上海"
    assert view["attributes"]["custom"] == {"join_date": "2023-01-05"}


def test_an_empty_upload_is_refused_and_orders_mapped_to_a_missing_column_fail_at_once(flow, tmp_path):
    admin = flow.platform["identity"].api(ADMIN)
    r = admin.post("/v1/imports", files={"members": ("m.csv", b"", "text/csv")})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "import_empty_file")
    orders = tmp_path / "orders.csv"
    orders.write_text("mobile,total,paid\n13961728450,5.00,2026-01-02\n", encoding="utf-8")
    job = run_job(flow, "orders", {"orders": orders}, options={"columns": {
        "phone": "mobile", "amount": "total", "date": "date", "store": "store_id", "order": "order_id",
        "member_id": "member_id"}})
    assert (job.status, job.error, job.counts) == ("failed", "orders: the header has no column date", {})


def test_the_same_receipt_number_at_two_stores_is_two_orders(flow, tmp_path):
    # Tills number their receipts per store: 1001 at SH-001 and 1001 at SH-002 are different sales.
    flow.set_clocks(_noon())
    orders = tmp_path / "orders.csv"
    day = (_today() - timedelta(days=10)).isoformat()
    orders.write_text(f"order_id,phone,amount,date,store_id\n1001,13961728453,100.00,{day},SH-001\n"
                      f"1001,13961728454,200.00,{day},SH-002\n", encoding="utf-8")
    job = run_job(flow, "orders", {"orders": orders})
    assert job.status == "done" and job.counts["orders.imported"] == 2
    flow.platform.settle()
    spend = {p: flow.view(flow.customer_id(phone=p))["stats"]["total_spend"] for p in ("13961728453", "13961728454")}
    assert spend == {"13961728453": "100.00", "13961728454": "200.00"}


def test_two_rows_for_one_member_end_with_the_later_line_as_a_file_reads(flow, tmp_path):
    flow.set_clocks(_noon())
    members = tmp_path / "members.csv"
    lines = ["phone,name,city"] + [f"1396172846{i},Old{i},Hangzhou\n1396172846{i},New{i},Shanghai" for i in range(6)]
    members.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert run_job(flow, "members", {"members": members}).counts["members.imported"] == 12
    flow.platform.settle()
    # Each member ends with the later line's name and city (the name read whole, as an admin may).
    admin, ends = flow.platform["identity"].api(ADMIN), {}
    for i in range(6):
        r = admin.get(f"/v1/customers/{flow.customer_id(phone=f'1396172846{i}')}", params={"reveal": "true"})
        assert r.status_code == 200, r.text
        ends[i] = (r.json()["attributes"]["name"], r.json()["attributes"]["city"])
    assert ends == {i: (f"New{i}", "Shanghai") for i in range(6)}


def test_an_imports_events_carry_its_own_untraced_context_unless_asked_to_be_traced(flow, tmp_path):
    # A million imported events traced one in ten would cost every service 14-21% more CPU for traces nobody
    # follows: each event carries a trace of its own, marked not sampled, the same when the job runs again.
    flow.set_clocks(_noon())
    members = tmp_path / "members.csv"
    members.write_text("phone,name,sms_consent,tier\n13961728491,Wu,yes,B\n13961728492,Zheng,no,\n", encoding="utf-8")
    deps, sent = flow.platform["identity"].deps, []

    def publish(messages):
        sent.append([dict(m.headers) for m in messages])
        deps.publish(messages)

    runs = [run_job(flow, "members", {"members": members}, publish=publish) for _ in range(2)]
    assert [r.counts["events"] for r in runs] == [5, 5] and len(sent) == 2
    first, again = sent
    parents = [h["traceparent"] for h in first]
    assert [list(h) for h in first] == [["traceparent"]] * 5 and len({p[3:35] for p in parents}) == 5
    assert all(re.fullmatch(rb"00-[0-9a-f]{32}-[0-9a-f]{16}-00", p) for p in parents)  # each not sampled
    assert again == first  # the same traces, whichever run
    flow.platform.settle()
    assert flow.account(flow.customer_id(phone="13961728491"))["tier"] == "B"  # consumed as any event is

    orders = tmp_path / "orders.csv"
    orders.write_text("phone,amount,date,store_id,order_id\n13961728491,88.00,2026-01-05,SH-001,T-1\n",
                      encoding="utf-8")
    sent.clear()
    assert run_job(flow, "orders", {"orders": orders}, publish=publish, traced=True).counts["events"] == 1
    assert sent == [[{}]]  # traced as a channel event is: its context made where identity takes it
