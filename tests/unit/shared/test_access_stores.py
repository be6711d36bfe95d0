"""The stores registry (issue 12): CSV and JSON, errors naming row and field, re-read when the file changes."""

from __future__ import annotations

import json
import os
from datetime import time

import pytest

from shared.access.scope import Scope
from shared.access.stores import MealPeriod, Store, StoreRegistry, StoresFileError, parse_stores

CSV = """store_id,name,region,timezone,parent,meal_periods
SH-001,Jing'an,east,Asia/Shanghai,,lunch=10:30-15:00;dinner=16:30-22:30
SH-002,Xuhui,east,Asia/Shanghai,SH-001,
GZ-001,Tianhe,south,Asia/Shanghai,,late=22:00-02:00
"""


def _write(path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_a_csv_registry_reads_every_field():
    stores = parse_stores(CSV, kind="csv")
    assert stores["SH-001"] == Store("SH-001", "Jing'an", "east", "Asia/Shanghai", None, (
        MealPeriod("lunch", time(10, 30), time(15, 0)), MealPeriod("dinner", time(16, 30), time(22, 30))))
    assert stores["SH-002"] == Store("SH-002", "Xuhui", "east", "Asia/Shanghai", "SH-001", ())
    assert stores["GZ-001"].meal_periods == (MealPeriod("late", time(22, 0), time(2, 0)),)


def test_a_json_registry_reads_the_same_as_csv_and_takes_meal_periods_as_an_object():
    doc = {"stores": [
        {"store_id": "SH-001", "name": "Jing'an", "region": "east", "timezone": "Asia/Shanghai",
         "meal_periods": {"lunch": "10:30-15:00", "dinner": "16:30-22:30"}},
        {"store_id": "SH-002", "name": "Xuhui", "region": "east", "timezone": "Asia/Shanghai", "parent": "SH-001"},
        {"store_id": "GZ-001", "name": "Tianhe", "region": "south", "timezone": "Asia/Shanghai",
         "meal_periods": "late=22:00-02:00"},
    ]}
    assert parse_stores(json.dumps(doc), kind="json") == parse_stores(CSV, kind="csv")
    assert parse_stores(json.dumps(doc["stores"]), kind="json") == parse_stores(CSV, kind="csv")


@pytest.mark.parametrize(("text", "message"), [
    ("store_id,name,region\nS1,a,east\n", "CRM_STORES_FILE: header lacks timezone"),
    ("store_id,name,region,timezone\nS1,a,east,Asia/Shanghai\nS2,b,east,Mars/Olympus\n",
     "CRM_STORES_FILE row 3: field timezone: not a known timezone (e.g. Asia/Shanghai)"),
    ("store_id,name,region,timezone\nS1,a,,Asia/Shanghai\n", "CRM_STORES_FILE row 2: field region: required"),
    ("store_id,name,region,timezone\nS1,a,east,UTC\nS1,b,east,UTC\n",
     "CRM_STORES_FILE row 3: field store_id: S1 is listed twice"),
    ("store_id,name,region,timezone\nS 1,a,east,UTC\n",
     "CRM_STORES_FILE row 2: field store_id: 1-64 letters, digits or . _ - (required)"),
    ("store_id,name,region,timezone,parent\nS1,a,east,UTC,S9\n",
     "CRM_STORES_FILE row 2: field parent: names no other store of the file"),
    ("store_id,name,region,timezone,meal_periods\nS1,a,east,UTC,lunch=25:00-26:00\n",
     "CRM_STORES_FILE row 2: field meal_periods: entries look like lunch=10:30-15:00, separated by ;"),
])
def test_a_bad_csv_is_refused_naming_the_row_and_the_field(text, message):
    with pytest.raises(StoresFileError) as caught:
        parse_stores(text, kind="csv")
    assert str(caught.value) == message


@pytest.mark.parametrize(("text", "message"), [
    ("{", "CRM_STORES_FILE: not valid JSON (line 1)"),
    ('{"stores": 3}', 'CRM_STORES_FILE: JSON is a list of stores (or {"stores": [...]})'),
    ('[{"store_id": "S1", "name": "a", "region": "east", "timezone": "UTC"}, 7]',
     "CRM_STORES_FILE row 2: a store is an object"),
    ('[{"store_id": "S1", "name": 5, "region": "east", "timezone": "UTC"}]',
     "CRM_STORES_FILE row 1: field name: a string"),
])
def test_a_bad_json_is_refused_naming_the_row_and_the_field(text, message):
    with pytest.raises(StoresFileError) as caught:
        parse_stores(text, kind="json")
    assert str(caught.value) == message


def test_the_registry_answers_regions_and_is_re_read_when_the_file_changes(tmp_path):
    file = tmp_path / "stores.csv"
    _write(file, CSV)
    registry = StoreRegistry(file, recheck_s=0)
    assert registry.known() == frozenset({"SH-001", "SH-002", "GZ-001"})
    assert (registry.region_of("SH-002"), registry.region_of("GZ-001"), registry.region_of("XX-9")) == (
        "east", "south", None)
    assert Scope("region", "east").stores(registry.region_of, registry.known()) == frozenset({"SH-001", "SH-002"})

    _write(file, CSV.replace("SH-002,Xuhui,east", "SH-002,Xuhui,west"))
    assert registry.region_of("SH-002") == "west"

    _write(file, CSV + "BAD,,south,Asia/Shanghai,,\n")  # a broken edit: logged, the last good registry stays
    assert registry.region_of("SH-002") == "west"
    assert registry.error == "CRM_STORES_FILE row 5: field name: required"

    _write(file, CSV)
    assert (registry.region_of("SH-002"), registry.error) == ("east", None)


def test_the_registry_checks_the_file_at_most_once_per_recheck_interval(tmp_path):
    now = [100.0]
    file = tmp_path / "stores.csv"
    _write(file, CSV)
    registry = StoreRegistry(file, recheck_s=1.0, clock=lambda: now[0])
    assert registry.region_of("SH-002") == "east"
    _write(file, CSV.replace("SH-002,Xuhui,east", "SH-002,Xuhui,west"))
    assert registry.region_of("SH-002") == "east"  # checked 0 s ago
    now[0] += 1.0
    assert registry.region_of("SH-002") == "west"


def test_a_bad_file_at_start_up_is_an_error_and_no_file_is_an_empty_registry(tmp_path):
    file = tmp_path / "stores.json"
    file.write_text('[{"store_id": "S1", "name": "a", "region": "east", "timezone": "Nowhere/Land"}]')
    with pytest.raises(StoresFileError, match=r"^CRM_STORES_FILE row 1: field timezone"):
        StoreRegistry(file)
    with pytest.raises(StoresFileError, match=r"^CRM_STORES_FILE: no such file$"):
        StoreRegistry(tmp_path / "missing.csv")
    empty = StoreRegistry(None)
    assert (empty.known(), empty.region_of("S1"), empty.stores()) == (frozenset(), None, [])
