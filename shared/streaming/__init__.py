"""Kafka and faust plumbing: producer and topics, the batch consumer, the outbox relay, dead letters."""
