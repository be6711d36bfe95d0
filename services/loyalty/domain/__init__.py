"""Loyalty rules: pure functions and value types over the facts; no database, broker or web here."""
