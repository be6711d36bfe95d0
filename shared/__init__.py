"""Code the four services share: event models, settings, Kafka plumbing, privacy helpers."""
