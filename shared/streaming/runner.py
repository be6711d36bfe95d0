"""Runs one service as a process: its API (uvicorn, in a thread) and its faust worker."""

from __future__ import annotations

import logging
import threading

from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)


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
    if not worker:
        serve_api(service, settings, name, port=port, in_thread=False)
        return
    if api:
        serve_api(service, settings, name, port=port, in_thread=True)
    from shared.streaming.kafka import faust_worker

    faust_worker(service.faust_app(), settings.log_level.lower()).execute_from_commandline()
