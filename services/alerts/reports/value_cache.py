"""What the customer-value report computes, kept while nothing it reads changes (issues 15 and 16).

Ranking every customer of the period takes a second at 100,000 customers; the console and the CLV route ask
for the same ranking again and again. The report, the customers' totals and their owners are kept per store
in ``shared.kept`` under the store's value generation (``value_generation``, bumped with every write to the
value aggregate, a merge, an unmerge, an erasure and an owner change) and brought forward through the log of
changed ids (``value_changes``): see ``reports.value``.
"""

from __future__ import annotations

from shared.kept import ROWS_LIMIT, Kept, kept_for

__all__ = ["ROWS_LIMIT", "Kept", "kept_for"]
