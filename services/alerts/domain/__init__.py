"""The alerts rules: pure functions and value types (facts, rules, evaluation, workflow, churn scoring)."""
