"""``crm bench import``: members imported per second by ``crm import members`` (rows read, checked, turned
into events and acknowledged by the broker, progress kept in identity's store), and the time that projects
for 1,000,000 members with the same share of points lots, tiers and consents.

The members are generated (:func:`write_members`): each with a phone, a member id, a profile, an SMS
consent, a home store and, one in three, a tier; ``lots`` points lots each on average. The broker is the one
``CRM_KAFKA_BOOTSTRAP`` names when it answers, else the bundled one, started for the run; the store is a
fresh SQLite file. What the services then do with the events is their own rate (``crm bench identity``,
``crm bench loyalty``): the import only has to hand them over.
"""

from __future__ import annotations

import os
import random
import resource
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import typer

from crm.broker import free_port, reachable, start_broker

TIERS = ("A", "B", "C")
STORES = ("SH-001", "SH-002", "BJ-001", "GZ-001")
MEMBER_HEADER = ("phone,member_id,wechat_openid,name,gender,birthday,email,city,join_date,home_store,tier,"
                 "tier_since,sms_consent")


def write_members(folder: Path, count: int, *, seed: int = 14, lots: float = 1.0,
                  today: date | None = None) -> tuple[Path, Path, list[str]]:
    """A member file and a points file of ``count`` generated members (distinct phones); returns their paths
    and the phones in file order."""
    rng = random.Random(seed)
    today = today or datetime.now(UTC).date()
    month_start = today.replace(day=1)
    phones: list[str] = []
    taken: set[str] = set()
    members, points = folder / "members.csv", folder / "points.csv"
    with open(members, "w", encoding="utf-8") as m, open(points, "w", encoding="utf-8") as p:
        m.write(MEMBER_HEADER + "\n")
        p.write("phone,member_id,points,earned_at\n")
        for i in range(count):
            while (phone := f"13{rng.randrange(5, 10)}{rng.randrange(10**8):08d}") in taken:
                pass
            taken.add(phone)
            phones.append(phone)
            joined = today - timedelta(days=rng.randrange(30, 3000))
            tier = rng.choice(TIERS) if rng.random() < 1 / 3 else ""
            # A tier from this month's start on: it holds until the next review (a month start after today).
            since = (month_start + timedelta(days=rng.randrange(0, max(1, (today - month_start).days + 1)))
                     if tier else "")
            consent = rng.choice(("yes", "no", "")) if i % 7 else "1"
            notation = (phone, f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}", f"{phone[:3]}-{phone[3:7]}-{phone[7:]}")
            m.write(f"{rng.choice(notation)},M{i:08d},,会员{i},{rng.choice('FM')},"
                    f"{1950 + rng.randrange(55)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d},"
                    f"m{i}@example.com,上海,{joined.isoformat()},{rng.choice(STORES)},{tier},{since},{consent}\n")
            n = int(lots) + (1 if rng.random() < lots - int(lots) else 0)
            for _ in range(n):
                earned = today - timedelta(days=rng.randrange(1, 700))
                p.write(_lot_line(phone, i, rng.randrange(1, 5000), earned, by_phone=rng.random() < 0.8))
    return members, points, phones


def _lot_line(phone: str, i: int, points: int, earned: date, *, by_phone: bool) -> str:
    return f"{phone},,{points},{earned.isoformat()}\n" if by_phone else f",M{i:08d},{points},{earned.isoformat()}\n"


def bench_import(members: int = typer.Option(100_000, help="generated members"),
                 lots: float = typer.Option(1.0, help="points lots per member on average"),
                 chunk: int = typer.Option(2000, help="rows published per step"),
                 workers: int = typer.Option(2, help="processes that check rows (0: the importing one)"),
                 through: bool = typer.Option(False, "--through-services",
                                              help="run the four services as crm up does and time the import until "
                                                   "every one of them has taken every member")) -> None:
    """Import generated members through ``crm import members`` and print rows/s and the 1,000,000 projection."""
    from crm.imports import run_import
    from shared.settings import Settings

    if through:
        through_services(members, lots=lots, chunk=chunk, workers=workers)
        return

    broker = None
    base = Settings()
    bootstrap = base.kafka_bootstrap
    if not reachable(bootstrap):
        port = free_port()
        broker = start_broker(port)
        bootstrap = f"127.0.0.1:{port}"
    try:
        with tempfile.TemporaryDirectory(prefix="crm-bench-import-") as tmp:
            folder = Path(tmp)
            settings = Settings(_env_file=None, kafka_bootstrap=bootstrap, data_dir=str(folder / "data"),
                                pseudonym_secret="bench-import-secret-0123456789")
            started = time.perf_counter()
            m_path, p_path, _ = write_members(folder, members, lots=lots)
            made = time.perf_counter() - started
            lot_rows = sum(1 for _ in open(p_path, encoding="utf-8")) - 1
            kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            broker0 = _cpu_of(broker.pid) if broker is not None else 0.0
            cpu0, started = time.process_time(), time.perf_counter()
            job, _ = run_import("members", {"members": m_path, "points": p_path}, options={}, chunk_rows=chunk,
                                quiet=True, settings=settings, workers=workers)
            took, cpu = time.perf_counter() - started, time.process_time() - cpu0
            kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            workers_cpu = kids1.ru_utime + kids1.ru_stime - kids0.ru_utime - kids0.ru_stime
            broker_cpu = _cpu_of(broker.pid) - broker0 if broker is not None else None
    finally:
        if broker is not None:
            broker.kill()
    rows = members + lot_rows
    per_member = took / members
    typer.echo(f"generated {members:,} members and {lot_rows:,} lots in {made:.1f} s")
    typer.echo(f"imported: {job.status}; {job.counts.get('events', 0):,} events; rejected "
               f"{job.counts.get('members.rejected', 0) + job.counts.get('points.rejected', 0):,}")
    typer.echo(f"{took:.1f} s wall, {cpu:.1f} s CPU of the importing process ({workers} row workers beside it)")
    typer.echo(f"{rows / took:,.0f} rows/s "
               f"({members / took:,.0f} members/s with their lots, {job.counts.get('events', 0) / took:,.0f} events/s)")
    projected = per_member * 1_000_000
    typer.echo(f"projected for 1,000,000 members: {projected / 60:.1f} min (target: under 10 min)")
    total = cpu + workers_cpu + (broker_cpu or 0.0)
    typer.echo(f"CPU s per 1,000 members: importer {cpu / members * 1000:.3f}, row workers "
               f"{workers_cpu / members * 1000:.3f}"
               + (f", bundled broker {broker_cpu / members * 1000:.3f}" if broker_cpu is not None else "")
               + f"; all of it spread over 2 free cores: {total / members * 1_000_000 / 2 / 60:.1f} min"
               " for 1,000,000 members (the machine's load decides the wall time above)")


def _cpu_of(pid: int) -> float:
    """CPU seconds a process has used (Linux /proc), 0 when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def through_services(members: int, *, lots: float = 1.0, chunk: int = 2000, workers: int = 2) -> dict[str, int]:
    """The import as a brand sees it done: from its start until identity has resolved every event and loyalty,
    alerts and campaigns have each taken every resolved one (the services' own counters, as ``crm bench
    platform`` reads them). Returns the counts: channel events identity consumed, customer events it
    resolved, and those each other service took, with ``events``, what the import published."""
    from crm.bench.platform import bench_platform
    from crm.bench.whole_platform import SERVICES, batches, proc_cpu_s, wait_done
    from crm.imports import run_import
    from shared.settings import Settings

    with bench_platform() as platform, tempfile.TemporaryDirectory(prefix="crm-bench-import-") as tmp:
        settings = Settings(_env_file=None, kafka_bootstrap=platform.bootstrap, data_dir=str(platform.data_dir),
                            pseudonym_secret=platform.env["CRM_PSEUDONYM_SECRET"])
        launched = {s: platform.launch(s, workers=settings.workers_of(s)) for s in SERVICES}
        for s, names in launched.items():
            platform.wait_assigned(s, names)
        m_path, p_path, _ = write_members(Path(tmp), members, lots=lots)
        pids = {w: p.pid for w, p in platform.procs.items()}
        cpu0 = {w: proc_cpu_s(pid) for w, pid in pids.items()}
        started = time.monotonic()
        job, _ = run_import("members", {"members": m_path, "points": p_path}, options={}, chunk_rows=chunk,
                            quiet=True, settings=settings, workers=workers)
        handed = time.monotonic() - started
        events = job.counts.get("events", 0)
        done, counts = wait_done(platform, channel_total=events, timeout_s=max(600, events / 50))
        took = max(done.values()) - started
        cpu = {s: sum(proc_cpu_s(pid) - cpu0[w] for w, pid in pids.items() if w.split("-")[0] == s)
               for s in SERVICES}
        handled = {s: b.count for s, b in batches(platform).items()}
    typer.echo(f"imported {members:,} members: {job.status}; {events:,} events; handed to the broker in "
               f"{handed:.1f} s")
    typer.echo("every service done in " + ", ".join(f"{s} {done[s] - started:.1f} s" for s in SERVICES)
               + f"; counts {counts}")
    typer.echo(f"{members / took:,.0f} members/s through all four services ({events / took:,.0f} events/s); "
               f"projected for 1,000,000 members: {took / members * 1_000_000 / 60:.1f} min (target: under 10 min)")
    typer.echo("CPU s per 1,000 members: " + ", ".join(f"{s} {cpu[s] / members * 1000:.2f}" for s in SERVICES))
    taken = {"identity": counts.get("channel", 0)} | {s: counts.get(s, 0) for s in SERVICES if s != "identity"}
    typer.echo("batches handled (mean events each): " + ", ".join(
        f"{s} {handled[s]:,} ({taken[s] / max(handled[s], 1):,.0f})" for s in SERVICES))
    return {"events": events, **counts}
