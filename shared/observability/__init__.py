"""Observability: the OpenTelemetry set-up, trace context in message headers, JSON logs, metrics."""
