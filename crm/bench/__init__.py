"""Benchmarks behind `crm bench …`: each runs on demand and prints its figures (medians over runs)."""
