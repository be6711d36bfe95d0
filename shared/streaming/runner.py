"""Runs one service as a process: its API (uvicorn, in a thread) and its faust worker."""

from __future__ import annotations

import gc
import logging
import threading

from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)


# The collector's thresholds in a service process: the young generation collected every 10,000 net allocations
# of container objects instead of CPython's 700 (older generations keep their default ratios, so everything is
# still collected, only in larger, rarer steps). See ``settle_heap``.
GC_THRESHOLDS = (10_000, 10, 10)


def settle_heap() -> None:
    """Once a service is built: what it holds for its whole life (modules, schemas, the app) is left out of
    garbage collection, and collections run less often (``GC_THRESHOLDS``)."""
    # Each batch makes and drops thousands of short-lived objects (decoded messages, spans, rows): with the
    # defaults that was a young collection every few messages and, every few seconds, a full one walking the
    # ~150,000 objects of the built service, a sixth of alerts' and a fifth of campaigns' consume CPU
    # (``python -m crm.bench.consume_path measure``). Frozen are only the objects alive once the service is
    # built, which live as long as the process; whatever is made later is collected as before, in fewer passes.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _factory(name: str):
    import importlib

    return importlib.import_module(f"services.{name}.app").create_app


def _port(settings: Settings, name: str) -> int:
    return getattr(settings, f"{name}_port")


def serve_api(service, settings: Settings, name: str, *, port: int | None = None, in_thread: bool) -> None:
    """Serve the service's API with uvicorn."""
    import uvicorn

    # reset_contextvars: a request whose body exceeds uvicorn's read limit pauses the connection, and the
    # next request on it would otherwise start inside the previous one's context (and trace).
    config = uvicorn.Config(service.api, host=settings.api_host, port=port or _port(settings, name),
                            log_config=None, access_log=False, lifespan="off", reset_contextvars=True)
    server = uvicorn.Server(config)
    if in_thread:
        threading.Thread(target=server.run, name=f"{name}-api", daemon=True).start()
    else:
        server.run()


def run_service(name: str, *, api: bool = True, worker: bool = True, port: int | None = None) -> None:
    """Start a service; blocks until it is told to stop."""
    from shared.observability.logs import setup_logging
    from shared.observability.telemetry import setup_tracing

    settings = get_settings()
    setup_logging(name, settings.log_level)
    setup_tracing(name, settings)
    service = _factory(name)(settings)
    settle_heap()
    if not worker:
        serve_api(service, settings, name, port=port, in_thread=False)
        return
    if api:
        serve_api(service, settings, name, port=port, in_thread=True)
    from shared.streaming.kafka import faust_worker

    faust_worker(service.faust_app(), settings.log_level.lower()).execute_from_commandline()
