"""The ``crm`` command line (Typer)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import typer

app = typer.Typer(help="Event-driven CRM platform: run it, feed it, measure it.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print their figures.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
staff_app = typer.Typer(help="Staff accounts that sign in for short-lived tokens.", no_args_is_help=True)
app.add_typer(staff_app, name="staff")

# -- issue 14: member and order imports, and their benchmark --
from crm.bench.imports import bench_import  # noqa: E402
from crm.imports import import_app  # noqa: E402

app.add_typer(import_app, name="import")
bench_app.command("import")(bench_import)


@app.command()
def up(demo: bool = typer.Option(False, "--demo", help="feed the generated sample once the platform is ready")):
    """Start the whole platform on this machine (broker, topics, every service); Ctrl-C stops it."""
    from crm.platform import (
        CONSOLE,
        Platform,
        available_services,
        console_banner,
        dev_console_admin,
        dev_environment,
        key_banner,
    )
    from shared.settings import Settings
    from shared.storage.files import private_umask

    private_umask()  # the data dir, stores, keys, logs and trace files: the owner's alone
    settings = Settings()
    env = dev_environment(settings)
    sign_in = dev_console_admin(settings, env)
    platform = Platform(settings=Settings(_env_file=None, **_env_overrides(env)), env=env,
                        services=available_services())

    def _stop(*_):
        platform.stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        platform.start()
        platform.wait_ready()
        typer.echo("CRM platform is up.")
        typer.echo(f"  broker     {settings.kafka_bootstrap}")
        for name in platform.services:
            port = getattr(settings, f"{name}_port")
            typer.echo(f"  {name:<10} http://{settings.api_host}:{port}  (docs: /docs)")
        typer.echo(key_banner(settings, env))
        if (CONSOLE, 0) in platform.children:
            typer.echo(console_banner(settings, env, sign_in))
        typer.echo(f"  data       {Path(settings.data_dir).resolve()}   logs: {platform.log_dir.resolve()}")
        typer.echo("Press Ctrl-C to stop.")
        if demo:
            from crm.demo import run_demo

            run_demo(Settings(_env_file=None, **_env_overrides(env)))
        platform.supervise()
    finally:
        typer.echo("stopping…")
        platform.stop()


def _env_overrides(env: dict[str, str]) -> dict[str, str]:
    return {k.removeprefix("CRM_").lower(): v for k, v in env.items()
            if k.startswith("CRM_") and k.removeprefix("CRM_").lower() in _GENERATED}


_GENERATED = {"api_keys", "pseudonym_secret", "token_secret", "staff_file", "master_key"}


@app.command()
def service(name: str, api: bool = typer.Option(True, help="serve the HTTP API"),
            worker: bool = typer.Option(True, help="run the faust worker"),
            port: int = typer.Option(0, help="API port (default: the service's own)")):
    """Run one service in this process (what `crm up` and the container start)."""
    from shared.storage.files import private_umask
    from shared.streaming.runner import run_service

    private_umask()
    sys.argv = [sys.argv[0], "worker"]  # faust's Worker reads argv
    run_service(name, api=api, worker=worker, port=port or None)


@app.command()
def console():
    """Serve the ops console (what `crm up` starts on CRM_CONSOLE_PORT, 8000 by default)."""
    from services.console.app import serve
    from shared.storage.files import private_umask

    private_umask()
    serve()


@app.command()
def topics():
    """Create the platform's topics on the configured broker."""
    from shared.settings import get_settings
    from shared.streaming.kafka import ensure_topics

    created = ensure_topics(get_settings())
    typer.echo(f"created {len(created)} topics" + (f": {', '.join(created)}" if created else ""))


@app.command()
def demo(people: int = typer.Option(200, help="how many sample customers")):
    """Feed a generated multi-channel sample through the API and show some single customer views."""
    from crm.demo import run_demo
    from shared.settings import get_settings

    run_demo(get_settings(), people=people)


@app.command()
def replay(file: Path, http: bool = typer.Option(False, help="post to the identity API instead of Kafka"),
           batch: int = typer.Option(500, help="events per request or flush")):
    """Publish events from a JSON-lines file to their channel topics, with a progress bar."""
    from crm.replay import replay_file
    from shared.settings import get_settings

    replay_file(file, get_settings(), via_http=http, batch=batch)


@app.command()
def trace(event_id: str, file: Path = typer.Option(None, help="span file (default: <data dir>/traces.jsonl)")):
    """Print one event's trace across the services as an indented tree with timings."""
    import os

    from crm.trace import trace_lines
    from shared.settings import get_settings

    path = file or Path(os.environ.get("CRM_TRACE_FILE", f"{get_settings().data_dir}/traces.jsonl"))
    for line in trace_lines(path, event_id):
        typer.echo(line)


@bench_app.command("identity")
def bench_identity(events: int = typer.Option(50_000, help="events to push"),
                   runs: int = typer.Option(3, help="runs; medians are reported"),
                   workers: int = typer.Option(2, help="identity worker processes"),
                   trace_ratio: float = typer.Option(1.0, help="share of events traced (1: all; crm up traces "
                                                                "CRM_TRACE_RATIO, 0.1 by default)")):
    """Events/s through identity, publish→profile latency, and a bare faust agent on the same data."""
    from crm.bench.identity import run

    run(events=events, runs=runs, workers=workers, trace_ratio=trace_ratio)


@bench_app.command("platform")
def bench_platform(events: int = typer.Option(30_000, help="mixed channel events of the full-speed phase"),
                   runs: int = typer.Option(3, help="runs; medians are reported"),
                   rates: str = typer.Option("500,1000", help="offered loads, events/s, each a phase after it"),
                   workers: str = typer.Option("", help="workers per service, e.g. identity=2,loyalty=1 "
                                                        "(default: as crm up)"),
                   customers: int = typer.Option(5000, help="customers in the base (one profile each first)"),
                   trace_ratio: float = typer.Option(0.1, help="share of events traced (0.1 as crm up, "
                                                                "CRM_TRACE_RATIO's default; 1: all)"),
                   load_seconds: float = typer.Option(20, help="seconds of each offered load (at most --events)")):
    """The four services together as crm up runs them: events/s, latency, CPU and RSS, and a bare pipeline."""
    from crm.bench.whole_platform import parse_workers, run

    run(events=events, runs=runs, rates=[float(r) for r in rates.split(",") if r.strip()],
        workers=parse_workers(workers), customers=customers, trace_ratio=trace_ratio, load_seconds=load_seconds)


@bench_app.command("erasure")
def bench_erasure(customers: int = typer.Option(1000, help="customers in the generated scenario"),
                  samples: int = typer.Option(10, help="customers erased, one after another")):
    """Seconds from an erasure request to ``done`` in every service, on the embedded platform (issue 12)."""
    from crm.bench.erasure import run

    run(customers=customers, samples=samples)


@bench_app.command("loyalty")
def bench_loyalty(events: int = typer.Option(20_000, help="purchases and refunds to push"),
                  runs: int = typer.Option(3, help="runs; medians are reported")):
    """Ledger updates/s through the embedded platform, and the ratio to identity's rate in the same run."""
    from crm.bench.loyalty import run

    run(events=events, runs=runs)


@bench_app.command("alerts")
def bench_alerts(customers: int = typer.Option(100_000, help="customers to scan"),
                 runs: int = typer.Option(3, help="runs; medians are reported")):
    """Duration of a scheduled alert scan and its per-customer cost."""
    from crm.bench.alerts import run

    run(customers=customers, runs=runs)


@bench_app.command("campaigns")
def bench_campaigns(customers: int = typer.Option(100_000, help="customers in the base"),
                    runs: int = typer.Option(3, help="runs; medians are reported")):
    """Time to launch a campaign over the whole customer base."""
    from crm.bench.campaigns import run

    run(customers=customers, runs=runs)


@bench_app.command("reports")
def bench_reports(customers: int = typer.Option(100_000, help="customers in the history"),
                  purchases: int = typer.Option(1_000_000, help="purchases over two years"),
                  batch: int = typer.Option(1000, help="facts per bulk store call"),
                  calls: int = typer.Option(5, help="calls per report route; the median is reported")):
    """Each report route's time over a large history, and the reports' aggregate cost per event (issue 15)."""
    from crm.bench.reports import run

    run(customers=customers, purchases=purchases, batch=batch, calls=calls)


@bench_app.command("console")
def bench_console(customers: int = typer.Option(100_000, help="customers in the history"),
                  purchases: int = typer.Option(1_000_000, help="purchases over two years"),
                  batch: int = typer.Option(1000, help="facts per bulk store call"),
                  calls: int = typer.Option(5, help="calls per page; the median is reported")):
    """Each console page's server time over a large history (issue 16: under 300 ms each)."""
    from crm.bench.console import run

    run(customers=customers, purchases=purchases, batch=batch, calls=calls)


@bench_app.command("http")
def bench_http(seconds: float = typer.Option(60, help="seconds of offered overload per run"),
               runs: int = typer.Option(3, help="runs; medians are reported"),
               batch: int = typer.Option(100, help="events per request"),
               capacity_seconds: float = typer.Option(15, help="seconds to measure capacity before the overload"),
               workers: int = typer.Option(2, help="identity worker processes"),
               in_flight: int = typer.Option(0, help="CRM_INGEST_MAX_IN_FLIGHT for identity (0: its default)")):
    """POST /v1/events at twice its capacity: shedding (429/503), latency, nothing accepted lost, RSS."""
    from crm.bench.http import run

    run(seconds=seconds, runs=runs, batch=batch, capacity_seconds=capacity_seconds, workers=workers,
        in_flight=in_flight or None)


@staff_app.command("add")
def staff_add(user: str,
              role: str = typer.Option("reader", help="reader, operator or admin"),
              store: str = typer.Option(None, help="scope: this one store (e.g. SH-001)"),
              region: str = typer.Option(None, help="scope: the stores of this region"),
              name: str = typer.Option("", help="display name"),
              password_stdin: bool = typer.Option(False, "--password-stdin", help="read the password from stdin"),
              file: Path = typer.Option(None, help="staff file (default: CRM_STAFF_FILE, else <data dir>/staff.json)")):
    """Add a staff account, or replace one of the same user name; the password is kept as an argon2id hash."""
    from crm.staff import add_staff

    password = sys.stdin.readline().rstrip("\n") if password_stdin else typer.prompt(
        "password", hide_input=True, confirmation_prompt=True)
    try:
        path, new = add_staff(user, role=role, store=store, region=region, display_name=name, password=password,
                              file=file)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{'added' if new else 'updated'} {user} ({role}) in {path}")


def main() -> None:
    """Entry point of the ``crm`` script."""
    app()


if __name__ == "__main__":
    main()
