"""Import jobs (issue 14): a brand's member file (with its points lots) or its historical orders, published
as the platform's own channel events, resumable, with every rejected row kept.

A job is named by its files' content (and options), so the same files imported again are the same job:
a job stopped half-way (a killed process, a stopped thread) resumes from the last line whose events the
broker acknowledged, and a finished one runs again from the start, publishing events every service has
seen already (their ids come from the rows' content), which changes nothing. Progress, counts and the
rejected rows of each chunk are written in one transaction after the chunk's events are acknowledged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import tempfile
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from services.identity.domain import imports as rules_of
from services.identity.domain.cleaning import PRIORITY
from services.identity.domain.imports import UNKNOWN_MEMBER, Built, FileError, Members, OrderColumns, Rules, member_hash
from services.identity.handlers import Deps
from services.identity.handlers.import_files import file_digest, file_encoding, line_count
from services.identity.store import ImportJob, ImportRowError
from shared.clock import iso_utc, parse_iso
from shared.contract import topics
from shared.contract.events import InvalidEvent, parse_event
from shared.http.errors import NotFound
from shared.service import Publish
from shared.streaming.kafka import Outgoing

log = logging.getLogger(__name__)

FILES = {"members": ("members", "points"), "orders": ("orders",)}
CHUNK_ROWS = 2000
Progress = Callable[[ImportJob], None]


def job_id_for(kind: str, sums: dict[str, str], options: dict[str, Any]) -> str:
    """A job's id: its kind, its files' SHA-256 by name and its options (the same import is the same job)."""
    return "imp_" + hashlib.sha256(json.dumps([kind, sorted(sums.items()), options], sort_keys=True)
                                   .encode()).hexdigest()[:20]


def untraced_headers(payload: bytes) -> list[tuple[str, bytes]]:
    """The trace context an imported event carries: a trace of its own (its ids a hash of the event, so a resumed
    job sends the same), marked not sampled. The services then make no span for a million imported events
    (tracing one in ten cost each service 14 to 21% more CPU per event, measured on ``consume_path``'s import
    recording), and an import is followed by its job (``GET /v1/imports/{id}``) rather than by traces. A trace
    per event, not one per job: a sampler that ignores the parent's decision samples them one by one, as it does
    a till's, instead of tracing a whole job or none of it."""
    ids = hashlib.blake2b(payload, digest_size=24).hexdigest()
    return [("traceparent", f"00-{ids[:32]}-{ids[32:]}-00".encode())]


def start(kind: str, files: dict[str, str], *, options: dict[str, Any], by: str, origin: str,
          deps: Deps) -> ImportJob:
    """The job for these files: a new one, the unfinished one to resume, or a finished one to run again."""
    files = {name: str(Path(path).resolve()) for name, path in files.items()}
    sums = {name: file_digest(path) for name, path in files.items()}
    job_id = job_id_for(kind, sums, options)
    store, now = deps.store, iso_utc(deps.clock())
    # Lines counted once, stored with the job: a resumed job dates each member row as the first run did.
    described = {name: {"path": files[name], "sha256": sums[name], "encoding": file_encoding(files[name]),
                        "lines": line_count(files[name])} for name in files}
    with store.transaction():
        held = store.import_job(job_id)
        if held is not None and held.status == "running":
            job = replace(held, files=described, updated_at=now)  # resumed (the files may have moved)
        elif held is not None:
            # Again from the first line: every event it publishes was seen already, so nothing changes.
            job = replace(held, status="running", files=described, progress={}, counts={}, updated_at=now,
                          error=None, by=by, options={**held.options, "origin": origin})
        else:
            job = ImportJob(job_id, kind, "running", described, {**options, "origin": origin}, {}, {}, now, now, by)
        store.put_import_job(job)
    return job


def run(job_id: str, *, deps: Deps, publish: Publish, on_progress: Progress | None = None,
        stop: threading.Event | None = None, chunk_rows: int = CHUNK_ROWS, workers: int = 0,
        traced: bool = False) -> ImportJob:
    """Publish a job's rows from where it stopped; returns the job as it ends (``running`` when ``stop`` was
    set: it resumes later). A file that cannot be read fails the job; a broker that does not acknowledge
    raises, leaving the job to resume. ``workers``: processes that check rows and build events (phone
    parsing is most of an import's CPU) while this one publishes; 0 builds here. ``traced``: the events are
    traced as channel events are (``CRM_TRACE_RATIO``); else none is (:func:`untraced_headers`)."""
    job = deps.store.import_job(job_id)
    if job is None:
        raise NotFound("import_not_found", "no such import")
    zone = ZoneInfo(deps.settings.timezone)
    rules = Rules(deps.cleaning, zone=zone, default_time=parse_iso(job.created_at).astimezone(zone),
                  now=deps.clock())
    counts: Counter[str] = Counter(job.counts)
    progress = dict(job.progress)
    topic = deps.settings.topic(topics.CHANNEL_TOPICS[rules_of.SOURCE.split("/", 1)[0]])
    pipe = _Pipeline(publish)
    # A lot must belong to a member: of the member file (gathered as it is read) or of the platform.
    index = Members() if "points" in job.files else None
    # Spawned, not forked: this process runs the producer's and the pipeline's threads.
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 0 else None
    try:
        for name in FILES[job.kind]:
            if name not in job.files:
                continue
            try:
                _run_file(job, name, rules=rules, deps=deps, pipe=pipe, topic=topic, counts=counts,
                          progress=progress, on_progress=on_progress, stop=stop, chunk_rows=chunk_rows, pool=pool,
                          workers=workers, index=index, traced=traced)
                pipe.drain()
            except (FileError, UnicodeDecodeError, OSError) as exc:
                pipe.drain()  # what was read before the fault is published and counted
                reason = str(exc) if isinstance(exc, FileError) else (
                    "the file is neither UTF-8 nor GBK text" if isinstance(exc, UnicodeDecodeError)
                    else "the file cannot be read")
                return _save(job, deps=deps, status="failed", error=f"{name}: {reason}", counts=counts,
                             progress=progress)
            if stop is not None and stop.is_set():
                return deps.store.import_job(job_id) or job
    finally:
        pipe.close()
        if pool is not None:
            pool.terminate()
    job = _save(job, deps=deps, status="done", counts=counts, progress=progress)
    if on_progress:
        on_progress(job)
    return job


Row = tuple[int, dict[str, str] | None, int]  # line, values (None: unreadable), occurrence of an identical lot
Member = tuple[int, str, str]  # (hash, kind, value) of an accepted lot's phone or member_id
# line, (payload, key kind, value), errors, and what a member row is known by (its phone's and member id's hashes)
# or whom a lot names (the identifiers too: the platform is asked about those the file does not hold)
Built1 = tuple[int, list[tuple[bytes, str, str]], list[rules_of.RowError], list[int] | list[Member]]


@dataclass(frozen=True)
class Task:
    """What building a chunk of one file's rows needs (sent to a worker process as it is)."""

    name: str
    rules: Rules
    columns: dict[str, str]
    lines: int = 0  # the file's lines (a member row's events are dated by how many follow it)


def build_chunk(task: Task, items: list[Row]) -> list[Built1]:
    """Each row's validated event payloads (with the identifier that keys them) or its errors."""
    if task.name == "members":
        def build(line: int, row: dict | None, _n: int) -> Built:
            return rules_of.member_events(line, row, task.rules, lines=task.lines)
    elif task.name == "points":
        def build(line: int, row: dict | None, n: int) -> Built:
            return rules_of.lot_events(line, row, task.rules, occurrence=n)
    else:
        cols = OrderColumns(**task.columns)

        def build(line: int, row: dict | None, _n: int) -> Built:
            return rules_of.order_events(line, row, task.rules, cols)
    out = []
    for line, row, n in items:
        built = build(line, row, n)
        payloads = _payloads(built, line=line)
        members: list[int] | list[Member] = []
        if payloads and task.name in ("members", "points"):
            ids = built.events[0]["data"]["identity"]
            # A member row sends its hashes only (fewer bytes between processes for a million of them).
            members = ([member_hash(kind, ids[kind]) for kind in rules_of.LOT_IDS if kind in ids]
                       if task.name == "members" else
                       [(member_hash(kind, ids[kind]), kind, ids[kind]) for kind in rules_of.LOT_IDS if kind in ids])
        out.append((line, payloads, built.errors, members))
    return out


def _payloads(built: Built, *, line: int) -> list[tuple[bytes, str, str]]:
    """The row's events, each validated by the event contract as every consumer validates it (so none is a
    dead letter for its shape), with the identifier ingestion would key it by: the first in identity's priority
    order (the row's identifiers were cleaned already, phones normalised, so they are not parsed twice). A row
    whose event the contract refuses is rejected whole."""
    out = []
    for event in built.events:
        try:
            parse_event(event, shallow=True)
        except InvalidEvent as exc:
            built.errors.append(rules_of.RowError(line, "-", f"rejected by the event contract: {exc.code}"))
            return []
        ids = event["data"]["identity"]
        first = next(kind for kind in PRIORITY if kind in ids)
        out.append((json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode(), first, ids[first]))
    return out


def _columns(name: str, mapped: dict[str, str]) -> tuple[tuple[str, ...] | None, tuple[str, ...], tuple[str, ...]]:
    if name == "members":
        return rules_of.MEMBER_COLUMNS, rules_of.MEMBER_IDS, ()
    if name == "points":
        return rules_of.LOT_COLUMNS, rules_of.LOT_IDS, ()
    # An orders file has the brand's own columns, mapped by options: those it must have are checked.
    cols = OrderColumns(**mapped)
    return None, (cols.phone, cols.member_id), (cols.amount, cols.date)


def _unread(path: str, name: str, *, done: int, chunk_rows: int, encoding: str = "utf-8-sig",
            mapped: dict[str, str] | None = None) -> Iterator[list[Row]]:
    """The file's rows after line ``done``, in chunks (identical lots counted from the first line on)."""
    columns, required, needed = _columns(name, mapped or {})
    seen: Counter[str] = Counter()  # identical lot rows are distinct lots: the nth gets its own id
    chunk: list[Row] = []
    with open(path, encoding=encoding, newline="") as fh:
        for line, row in rules_of.read_rows(fh, columns=columns, required_any=required,
                                             required_all=needed):
            n = 0
            if name == "points" and (key := rules_of.lot_key(row)) is not None:
                n = seen[key]
                seen[key] += 1
            if line <= done:
                continue
            chunk.append((line, row, n))
            if len(chunk) >= chunk_rows:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _built(chunks: Iterator[list[Row]], task: Task, pool: Any, workers: int) -> Iterator[list[Built1]]:
    """Chunks built in order: here, or by the worker processes with a few chunks read ahead (bounded memory)."""
    if pool is None:
        for items in chunks:
            yield build_chunk(task, items)
        return
    ahead: deque = deque()
    for items in chunks:
        ahead.append(pool.apply_async(build_chunk, (task, items)))
        if len(ahead) > 2 * workers:
            yield ahead.popleft().get()
    while ahead:
        yield ahead.popleft().get()


def _run_file(job: ImportJob, name: str, *, rules: Rules, deps: Deps, pipe: _Pipeline, topic: str,
              counts: Counter[str], progress: dict[str, int], on_progress: Progress | None,
              stop: threading.Event | None, chunk_rows: int, pool: Any, workers: int,
              index: Members | None = None, traced: bool = False) -> ImportJob:
    described = job.files[name]
    # A job started before lines were stored has them counted now (the same file: its sha256 names the job).
    lines = described.get("lines") or line_count(described["path"])
    task = Task(name, rules, job.options.get("columns", {}), lines)
    done = progress.get(name, 0)
    gather = name == "members" and index is not None
    # The lots need every member of the file: a resumed job reads again (checks, publishes nothing) the member
    # rows a stopped run published already, identity may not have consumed them yet.
    chunks = _unread(job.files[name]["path"], name, done=0 if gather else done, chunk_rows=chunk_rows,
                     encoding=job.files[name].get("encoding", "utf-8-sig"), mapped=task.columns)
    for chunk in _built(chunks, task, pool, workers):
        if gather:
            index.add([h for _line, _p, row_errors, hashes in chunk if not row_errors for h in hashes])
            chunk = [built for built in chunk if built[0] > done]
            if not chunk:
                continue
        elif name == "points" and index is not None:
            chunk = _of_members(chunk, index=index, deps=deps)
        outgoing: list[Outgoing] = []
        errors: list[ImportRowError] = []
        pending: Counter[str] = Counter()
        for _line, payloads, row_errors, _members in chunk:
            pending[f"{name}.rows"] += 1
            if row_errors:
                pending[f"{name}.rejected"] += 1
                errors += [ImportRowError(job.job_id, name, e.line, e.column, e.reason) for e in row_errors]
            else:
                pending[f"{name}.imported"] += 1
                pending["events"] += len(payloads)
                outgoing += [Outgoing(topic, payload, deps.pseudo(kind, value).encode(),
                                      [] if traced else untraced_headers(payload))
                             for payload, kind, value in payloads]
        _flush(job, name, chunk[-1][0], outgoing, errors, pending, deps=deps, pipe=pipe, counts=counts,
               progress=progress, on_progress=on_progress)
        if stop is not None and stop.is_set():
            return job
    return job


def _of_members(chunk: list[Built1], *, index: Members, deps: Deps) -> list[Built1]:
    """The chunk with each lot that names no member of the member file nor a customer of the platform rejected
    (its event would make a customer holding only points); the platform is asked only about the rest."""
    lots = [b for b in chunk if not b[2]]
    hits = iter(index.known([h for b in lots for h, _k, _v in b[3]]))
    unknown = {b[0]: b for b in lots if not any([next(hits) for _ in b[3]])}
    if unknown:
        found = deps.store.find([(kind, value) for b in unknown.values() for _h, kind, value in b[3]])
        unknown = {line: b for line, b in unknown.items() if not any((k, v) in found for _h, k, v in b[3])}
    return [(line, [], [rules_of.RowError(line, "member", UNKNOWN_MEMBER)], members) if line in unknown
            else (line, payloads, errors, members) for line, payloads, errors, members in chunk]


def _flush(job: ImportJob, name: str, line: int, outgoing: list[Outgoing], errors: list[ImportRowError],
           pending: Counter[str], *, deps: Deps, pipe: _Pipeline, counts: Counter[str], progress: dict[str, int],
           on_progress: Progress | None) -> None:
    def commit() -> None:
        counts.update(pending)
        progress[name] = max(progress.get(name, 0), line)
        with deps.store.transaction():
            if errors:
                deps.store.add_import_errors(errors)
            saved = _save(job, deps=deps, status="running", counts=counts, progress=progress, own_transaction=False)
        if on_progress:
            on_progress(saved)

    pipe.push(outgoing, commit)


class _Pipeline:
    """One chunk's events in flight to the broker while the next chunk is read: a chunk's progress is written
    only once its events are acknowledged, and chunks are committed in order."""

    def __init__(self, publish: Publish) -> None:
        self.publish = publish
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-publish")
        self.waiting: tuple[Future, Callable[[], None]] | None = None

    def push(self, outgoing: list[Outgoing], commit: Callable[[], None]) -> None:
        """Send a chunk (after the one in flight is acknowledged and committed)."""
        self.drain()
        self.waiting = (self.pool.submit(self.publish, outgoing) if outgoing else _done(), commit)

    def drain(self) -> None:
        """Wait for the chunk in flight and commit it (a publish failure raises here, its chunk uncommitted)."""
        if self.waiting is not None:
            future, commit = self.waiting
            self.waiting = None
            future.result()
            commit()

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def _done() -> Future:
    f: Future = Future()
    f.set_result(None)
    return f


def _save(job: ImportJob, *, deps: Deps, status: str, counts: Counter[str], progress: dict[str, int],
          error: str | None = None, own_transaction: bool = True) -> ImportJob:
    job = replace(job, status=status, counts=dict(counts), progress=dict(progress), updated_at=iso_utc(deps.clock()),
                  error=error)
    if own_transaction:
        with deps.store.transaction():
            deps.store.put_import_job(job)
    else:
        deps.store.put_import_job(job)
    return job


def status(job_id: str, *, deps: Deps, offset: int = 0, limit: int = 100) -> dict[str, Any]:
    """A job as ``GET /v1/imports/{id}`` shows it: status, counts, progress and a page of rejected rows."""
    job = deps.store.import_job(job_id)
    if job is None:
        raise NotFound("import_not_found", "no such import")
    errors = deps.store.import_errors(job_id, offset=offset, limit=limit)
    rejected = sum(v for k, v in job.counts.items() if k.endswith(".rejected"))
    return {"import_id": job.job_id, "kind": job.kind, "status": job.status, "counts": job.counts,
            "progress": job.progress, "rejected_rows": rejected, "created_at": job.created_at,
            "updated_at": job.updated_at, "error": job.error,
            "files": {n: {"sha256": f["sha256"]} for n, f in job.files.items()},
            "errors": [{"file": e.file, "line": e.line, "column": e.column, "reason": e.reason} for e in errors]}


# -- jobs the API starts: run in a thread of identity's process, resumed when it starts again ------


_RUNNING: set[str] = set()
_RUNNING_LOCK = threading.Lock()


def keep_upload(stream: BinaryIO, *, deps: Deps) -> str:
    """Keep an uploaded file under the data directory, named by its content (what a resumed job reads again);
    returns its path."""
    folder = Path(deps.settings.data_dir) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=folder, delete=False, suffix=".part") as tmp:
        for block in iter(lambda: stream.read(1 << 20), b""):
            h.update(block)
            tmp.write(block)
    target = folder / h.hexdigest()
    os.replace(tmp.name, target)
    return str(target)


def run_in_background(job_id: str, *, deps: Deps, publish: Publish) -> threading.Thread | None:
    """Run a job in a daemon thread, unless this process runs it already (a failure is logged and leaves the
    job to resume)."""
    with _RUNNING_LOCK:
        if job_id in _RUNNING:
            return None
        _RUNNING.add(job_id)

    def work() -> None:
        try:
            run(job_id, deps=deps, publish=publish)
        except Exception as exc:  # the broker, most likely: the job resumes at the next start
            log.warning("import %s stopped: %s; it resumes when identity starts again", job_id, type(exc).__name__)
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(job_id)

    thread = threading.Thread(target=work, name=f"import-{job_id}", daemon=True)
    thread.start()
    return thread


def resume_unfinished(*, deps: Deps, publish: Publish) -> list[str]:
    """Resume, in the background, every job the API started that a stopped process left running (a job the
    command line runs is resumed by running the same command again)."""
    ids = [j.job_id for j in deps.store.unfinished_import_jobs() if j.options.get("origin") == "api"]
    for job_id in ids:
        run_in_background(job_id, deps=deps, publish=publish)
    return ids
