"""Issue 13: a batch of channel events costs identity's store a few statements, not one per customer."""

from __future__ import annotations

from collections import Counter

from services.identity import messages
from tests.unit.identity.support import customer_of_phone, incoming, make_deps, purchase

PHONES = [f"+86138001380{n:02d}" for n in range(20)]


def _statements(deps) -> Counter:
    """The SQL statements the store's connection runs from now on, by their first words."""
    seen: Counter = Counter()
    deps.store.db.conn().set_trace_callback(lambda sql: seen.update([" ".join(sql.split()[:2]).upper()]))
    return seen


def test_a_batch_notes_all_its_changed_customers_in_one_update(tmp_path):
    deps = make_deps(tmp_path / "identity.db")
    messages.consume(incoming([purchase(f"a{n}", {"phone": p}, "5.00") for n, p in enumerate(PHONES)]), deps=deps)
    created = {p: deps.store.record(customer_of_phone(p)) for p in PHONES}
    seen = _statements(deps)
    outcome = messages.consume(incoming([purchase(f"b{n}", {"phone": p}, "7.00") for n, p in enumerate(PHONES)],
                                        first_offset=20), deps=deps)
    assert (outcome.processed, outcome.dead_lettered) == (20, 0)
    assert seen["UPDATE RECORDS"] == 1
    after = {p: deps.store.record(customer_of_phone(p)).updated_at for p in PHONES}
    # Every customer of the batch moved forward, to one moment: the batch's end.
    assert len(set(after.values())) == 1
    assert all(after[p] > created[p].updated_at for p in PHONES)
