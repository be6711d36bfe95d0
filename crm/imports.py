"""``crm import members`` / ``crm import orders`` (issue 14): a brand's files published as the platform's own
events from this machine, with a progress bar; the job (progress, counts, rejected rows) is kept in identity's
store, so the same command run again after an interruption resumes it, and ``GET /v1/imports/{id}`` shows it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

TRACED_HELP = ("trace the events as channel events are (CRM_TRACE_RATIO); by default none is, and the job is followed "
               "by its status")
import_app = typer.Typer(help="Import a brand's existing members (with points and tiers) and historical orders.",
                         no_args_is_help=True)


def identity_deps(settings: Any) -> Any:
    """Identity's handler dependencies on its own store (as ``crm up`` or the container configured it)."""
    from services.identity.app import open_store
    from services.identity.domain.cleaning import Cleaning
    from services.identity.handlers import Deps
    from shared.clock import system_clock
    from shared.privacy import Pseudonymizer

    store = open_store(settings.resolved_store_url(), master_key=settings.master_key_bytes())
    cleaning = Cleaning(region=settings.default_region, blocked_phones=settings.blocked_phone_set(),
                        blocked_values=settings.blocked_identifier_set(), currencies=settings.currency_set())
    return Deps(store=store, pseudo=Pseudonymizer(settings.secret_bytes()), cleaning=cleaning, settings=settings,
                clock=system_clock)


def count_lines(paths: list[Path]) -> int:
    """Lines in these files (the progress bar's total)."""
    total = 0
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda f=fh: f.read(1 << 20), b""):
                total += block.count(b"\n")
    return total


class BulkPublisher:
    """A producer for bulk loads: ``acks=all`` and idempotence as the services' publisher, large batches, and no
    span per message (an import is one job, not a million requests to follow): a message keeps the trace
    context the job gave it."""

    def __init__(self, settings: Any) -> None:
        from kafka import KafkaProducer

        self._producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, client_id="crm-import", acks="all",
                                       enable_idempotence=True, linger_ms=20, batch_size=1024 * 1024,
                                       retries=2**31 - 1, max_in_flight_requests_per_connection=5,
                                       max_block_ms=int(settings.publish_timeout_s * 1000))
        self._timeout_s = max(60.0, settings.publish_timeout_s)

    def send(self, messages: list[Any]) -> None:
        """Publish and wait until the broker has acknowledged every message."""
        send = self._producer.send
        futures = [send(m.topic, value=m.value, key=m.key, headers=m.headers) for m in messages]
        self._producer.flush(timeout=self._timeout_s)
        for f in futures:
            f.get(timeout=0)

    def close(self) -> None:
        self._producer.close()


def run_import(kind: str, files: dict[str, Path], *, options: dict[str, Any], chunk_rows: int, quiet: bool = False,
               settings: Any = None, publish: Any = None, workers: int = 0, traced: bool = False) -> Any:
    """Start or resume the job for these files and run it to its end, with a progress bar; returns the job."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from services.identity.handlers import imports
    from shared.contract import topics
    from shared.settings import Settings
    from shared.streaming.kafka import ensure_topics

    settings = settings or Settings()
    deps = identity_deps(settings)
    publisher = None
    if publish is None:
        ensure_topics(settings, list(topics.CHANNEL_TOPICS.values()))
        publisher = BulkPublisher(settings)
        publish = publisher.send
    job = imports.start(kind, {n: str(p) for n, p in files.items()}, options=options, by="cli", origin="cli",
                        deps=deps)
    total = count_lines(list(files.values()))
    try:
        with Progress(TextColumn("importing {task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("lines"), TimeRemainingColumn(), disable=quiet) as bar:
            task = bar.add_task(job.job_id, total=total, completed=sum(job.progress.values()))
            job = imports.run(job.job_id, deps=deps, publish=publish, chunk_rows=chunk_rows, workers=workers,
                              traced=traced, on_progress=lambda j: bar.update(task, completed=sum(j.progress.values())))
    finally:
        if publisher is not None:
            publisher.close()
    return job, deps


def _report(job: Any, deps: Any) -> None:
    from services.identity.handlers import imports

    shown = imports.status(job.job_id, deps=deps, limit=20)
    typer.echo(f"import {job.job_id}: {job.status}")
    for key in sorted(job.counts):
        typer.echo(f"  {key:<22} {job.counts[key]:>10,}")
    if job.error:
        typer.echo(f"  error: {job.error}")
    if shown["errors"]:
        typer.echo(f"rejected rows ({shown['rejected_rows']:,}; all of them at GET /v1/imports/{job.job_id}):")
        for e in shown["errors"]:
            typer.echo(f"  {e['file']} line {e['line']}, {e['column']}: {e['reason']}")
    if job.status != "done":
        raise typer.Exit(1)


@import_app.command("members")
def import_members(members_file: Path = typer.Argument(..., exists=True, dir_okay=False,
                                                       help="members, CSV with a header or JSON lines"),
                   points: Path | None = typer.Option(None, "--points", exists=True, dir_okay=False,
                                                      help="points lots: phone or member_id, points, earned_at"),
                   chunk: int = typer.Option(2000, min=1, help="rows published per step (progress is kept per step)"),
                   workers: int = typer.Option(2, min=0, help="processes that check rows (0: this one)"),
                   traced: bool = typer.Option(False, help=TRACED_HELP),
                   quiet: bool = typer.Option(False, help="no progress bar")):
    """Import members (profiles, SMS consent, home store, tier) and their points lots; run it again to resume."""
    files = {"members": members_file, **({"points": points} if points else {})}
    job, deps = run_import("members", files, options={}, chunk_rows=chunk, quiet=quiet, workers=workers, traced=traced)
    _report(job, deps)


@import_app.command("orders")
def import_orders(orders_file: Path = typer.Argument(..., exists=True, dir_okay=False, help="orders, CSV or JSON"),
                  phone_column: str = typer.Option("phone", help="column of the buyer's phone"),
                  member_id_column: str = typer.Option("member_id", help="column of the buyer's member id"),
                  amount_column: str = typer.Option("amount", help="column of the order's amount (CNY)"),
                  date_column: str = typer.Option("date", help="column of the order's date or date-time"),
                  store_column: str = typer.Option("store_id", help="column of the store"),
                  order_column: str = typer.Option("order_id", help="column of the order id"),
                  chunk: int = typer.Option(2000, min=1, help="rows published per step"),
                  workers: int = typer.Option(2, min=0, help="processes that check rows (0: this one)"),
                  traced: bool = typer.Option(False, help=TRACED_HELP),
                  quiet: bool = typer.Option(False, help="no progress bar")):
    """Import historical orders as purchases (columns mapped by the options); run it again to resume."""
    columns = {"phone": phone_column, "member_id": member_id_column, "amount": amount_column, "date": date_column,
               "store": store_column, "order": order_column}
    job, deps = run_import("orders", {"orders": orders_file}, options={"columns": columns}, chunk_rows=chunk,
                           quiet=quiet, workers=workers, traced=traced)
    _report(job, deps)
