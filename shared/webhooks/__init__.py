"""Webhooks: subscriptions to platform events, signed deliveries recorded outbox-style, sent apart from consumption."""
