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
        self.store_seconds = Histogram("crm_store_transaction_seconds", "Store transaction time",
                                       registry=self.registry)
        self.merges = Counter("crm_identity_merges_total", "Customer merges", registry=self.registry)
        self.retries = Counter("crm_transient_retries_total", "Transient failures retried",
                               ["what"], registry=self.registry).labels
        self.assigned = Gauge("crm_consumer_assigned_partitions", "Partitions this worker consumes",
                              registry=self.registry)
        self.service = labels["service"]
