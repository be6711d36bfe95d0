"""Campaigns use cases: consume facts, define and move campaigns through their states, launch, report."""
