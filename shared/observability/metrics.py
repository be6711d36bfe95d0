"""Prometheus metrics every service exposes; labels never carry personal data."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ServiceMetrics:
    """One registry per service process."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        labels = {"service": service}
        self.consumed = Counter("crm_events_consumed_total", "Messages consumed", ["topic"],
                                registry=self.registry).labels
        self.published = Counter("crm_events_published_total", "Messages published", ["topic"],
                                 registry=self.registry).labels
        self.outcomes = Counter("crm_events_outcome_total", "Fate of consumed messages",
                                ["outcome"], registry=self.registry).labels
        self.dead_letters = Counter("crm_dead_letters_total", "Messages dead-lettered", ["reason"],
                                    registry=self.registry).labels
        self.batch_seconds = Histogram("crm_handler_batch_seconds", "Time to process one batch",
                                       registry=self.registry)
        self.store_seconds = Histogram("crm_store_transaction_seconds", "Store transaction time", ["backend"],
                                       registry=self.registry).labels
        self.event_age = Histogram("crm_event_age_seconds", "From the broker receiving a message to its batch done",
                                   buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
                                   registry=self.registry)
        self.handled = Counter("crm_handled_total", "What handling did: merges, conflicts, ignored, ...",
                               ["what"], registry=self.registry).labels
        self.retries = Counter("crm_transient_retries_total", "Transient failures retried",
                               ["what"], registry=self.registry).labels
        self.assigned = Gauge("crm_consumer_assigned_partitions", "Partitions this worker consumes",
                              registry=self.registry)
        self.service = labels["service"]
