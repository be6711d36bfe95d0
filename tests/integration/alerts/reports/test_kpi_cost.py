"""Issue 16: a region's or the company's KPIs count their customers in the store (SQLite), not one Python row per
customer: only the few records of merged customers are mapped, read and counted in Python."""

from __future__ import annotations

from services.alerts.reports.kpi_read import kpis
from services.alerts.store.sqlite import SqliteAlertsStore
from shared.contract.facts import PurchaseFact
from shared.storage.membership import Membership


def _p(eid: str, record: str, day: str, store: str) -> PurchaseFact:
    return PurchaseFact(f"pos/{store}", eid, record, f"o-{eid}", 1000, store, 0, day)


def test_the_company_month_maps_and_reads_only_merged_customers_records(tmp_path):
    store = SqliteAlertsStore(tmp_path / "alerts.db")
    with store.transaction():
        store.add_purchases([_p(f"n{n}", f"c{n:03d}", f"2026-11-{n % 28 + 1:02d}", ("S01", "S02")[n % 2])
                             for n in range(300)]
                            + [_p(f"o{n}", f"c{n:03d}", "2026-10-05", "S01") for n in range(0, 300, 3)]
                            + [_p("m1", "r_m", "2026-11-02", "S02")])
        store.apply_memberships([Membership("r_m", "c001", "2026-11-03T00:00:00.000000Z")])
    asked: dict[str, list] = {"customers_of": [], "members": [], "kpi_firsts": [], "kpi_records": []}
    for name, seen in asked.items():
        def spy(*args, _method=getattr(store, name), _seen=seen, **kwargs):
            _seen.append(args[0] if args else kwargs)
            return _method(*args, **kwargs)
        setattr(store, name, spy)
    got = kpis(["2026-11"], store=store, stores=None, retention_days=90)["2026-11"]
    # 300 customers: c001 (with its record r_m: 2 and 2 November, one day); 100 of them bought in October.
    assert (got.customers, got.previous_customers, got.retained_customers, got.new_customers) == (300, 100, 100, 200)
    assert (got.purchase_days, got.orders) == (300, 301)
    assert asked["kpi_records"] == []
    assert asked["customers_of"] == [["c001", "r_m"]]
    assert sorted(asked["kpi_firsts"][0]) == ["c001", "r_m"]
    store.close()


def test_the_sql_count_of_day_bits_is_pythons_for_every_month_shape():
    import random
    import sqlite3

    from services.alerts.store.sqlite_kpi import _bit_count

    rng = random.Random(31)
    days = [0, 1, 1 << 30, (1 << 31) - 1, 0x55555555 >> 1, 0x2AAAAAAA] + [rng.getrandbits(31) for _ in range(2000)]
    conn = sqlite3.connect(":memory:")
    assert [conn.execute(f"SELECT {_bit_count('?1')}", (d,)).fetchone()[0] for d in days] == [
        d.bit_count() for d in days]
