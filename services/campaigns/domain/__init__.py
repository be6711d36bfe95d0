"""The campaign rules: definitions and states, audiences and the split, attribution, results, event effects.

Pure functions and value types only: no database, broker or web framework here.
"""
