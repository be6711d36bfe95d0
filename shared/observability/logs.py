"""JSON logs with trace and span ids; a filter masks phone numbers (any region, any notation) and e-mails."""

from __future__ import annotations

import logging
import sys

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from shared.privacy import redact


class _Context(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        record.service = self.service
        record.trace_id = format(ctx.trace_id, "032x") if ctx.is_valid else None
        record.span_id = format(ctx.span_id, "016x") if ctx.is_valid else None
        # Last guard: no log line carries a phone number (any region, any notation) or an e-mail address,
        # whoever formatted it; an exception's text too.
        record.msg = redact(record.getMessage())
        if record.exc_info:
            # Formatted here, redacted, and kept as text: formatters print exc_text when exc_info is gone.
            record.exc_text = redact(record.exc_text or logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        record.args = None
        return True


def setup_logging(service: str, level: str = "INFO") -> None:
    """Route every logger (faust, aiokafka, uvicorn included) to JSON lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                                       rename_fields={"asctime": "time", "levelname": "level"}))
    handler.addFilter(_Context(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request at INFO: the services fetch identity's signed-out tokens a few times a second.
    for noisy in ("aiokafka", "kafka", "faust", "mode", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
