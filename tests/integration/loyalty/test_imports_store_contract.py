"""Loyalty's store contract for member imports (issue 14): opening lots posted once as ledger movements, and
imported tiers kept once each, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime

from services.loyalty.domain.model import ADJUST, OPENING, Entry, TierImport


def _lot(n: int, record: str = "c_a", points: int = 100) -> Entry:
    return Entry(f"o:pos/import:l-{n}|opening|1", record, f"o:pos/import:l-{n}", OPENING, ADJUST, points,
                 f"2026-01-0{n}T00:00:00Z", "2026-12-05T00:00:00Z", {"import": f"l-{n}"})


def test_opening_lots_are_posted_once_and_read_back_as_movements(store):
    with store.transaction():
        assert store.add_openings([_lot(1), _lot(2), _lot(1)]) == [_lot(1), _lot(2)]
        assert store.add_openings([_lot(2), _lot(3, points=7)]) == [_lot(3, points=7)]
    assert sorted(store.movements_of(["c_a"]), key=lambda e: e.entry_id) == [_lot(1), _lot(2), _lot(3, points=7)]
    assert store.balance(["c_a"]) == 207


def test_imported_tiers_are_kept_once_and_read_in_time_order(store):
    late = TierImport("pos/import", "m-1-tier", "c_a", "A", datetime(2026, 11, 3, tzinfo=UTC))
    early = TierImport("pos/import", "m-2-tier", "c_b", "B", datetime(2026, 11, 1, tzinfo=UTC))
    with store.transaction():
        assert store.add_tier_imports([late, early]) == [late, early]
        assert store.add_tier_imports([late]) == []
    assert store.tier_imports_of(["c_a", "c_b", "c_z"]) == [early, late]
    assert store.tier_imports_of(["c_b"]) == [early]


def test_an_imported_tier_keeps_its_import_moment(store):
    # A tier held since 2021 and imported in 2026: the import moment is what decides its first review.
    old = TierImport("pos/import", "m-3-tier", "c_a", "A", datetime(2021, 5, 31, 16, tzinfo=UTC),
                     datetime(2026, 12, 5, 2, tzinfo=UTC))
    with store.transaction():
        assert store.add_tier_imports([old]) == [old]
    assert store.tier_imports_of(["c_a"]) == [old]
    assert store.tier_imports_of(["c_a"])[0].held_until == datetime(2026, 12, 5, 2, tzinfo=UTC)


def test_a_sqlite_file_from_before_the_import_moment_keeps_its_tiers_and_takes_new_ones(tmp_path):
    import sqlite3

    from services.loyalty.store.sqlite import SqliteLoyaltyStore
    from tests.integration.shared.backends import sqlite_file

    path = sqlite_file(tmp_path, "loyalty")
    with sqlite3.connect(path) as c:  # the table as issue 14 first made it
        c.execute("CREATE TABLE tier_imports (source TEXT NOT NULL, id TEXT NOT NULL, record_id TEXT NOT NULL,"
                  " tier TEXT NOT NULL, since TEXT NOT NULL, PRIMARY KEY (source, id)) WITHOUT ROWID")
        c.execute("INSERT INTO tier_imports VALUES ('pos/import', 'm-1-tier', 'c_a', 'A', '2026-11-03T00:00:00Z')")
    store = SqliteLoyaltyStore(path)
    new = TierImport("pos/import", "m-2-tier", "c_a", "B", datetime(2021, 5, 31, 16, tzinfo=UTC),
                     datetime(2026, 12, 5, 2, tzinfo=UTC))
    with store.transaction():
        assert store.add_tier_imports([new]) == [new]
    assert store.tier_imports_of(["c_a"]) == [
        new, TierImport("pos/import", "m-1-tier", "c_a", "A", datetime(2026, 11, 3, tzinfo=UTC))]
