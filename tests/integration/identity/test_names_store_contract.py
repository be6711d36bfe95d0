"""Issue 16, search by name, on every backend: the blind index of a record's name is kept by the same
``put_attributes`` call as the name, newest wins in any arrival order, a rename replaces it, a cleared name and
an erasure remove it, a merged customer is found by its records' names, a scope filters before paging, and the
index is rebuilt from the sealed names for a key that did not build it."""

from __future__ import annotations

from services.identity.store import ErasureRow
from services.identity.store.mongo import MongoIdentityStore
from services.identity.store.sqlite import SqliteIdentityStore
from shared.contract.facts import FieldValue
from shared.storage.owners import OwnerRow

OTHER_KEY = b"another-name-index-key-of-32-bytes-at-least"


def _named(store, rid: str, name: str | None, *, t: int = 1000, source: str = "web/shop",
           event_id: str | None = None) -> None:
    with store.transaction():
        store.create_record(rid, phone=None, at="T1")
        store.put_attributes([(rid, [FieldValue("name", name, t, source, event_id or f"e-{rid}-{t}")])])


def _all(store, name: str, stores=None) -> list[str]:
    return store.customers_named(name, stores=stores, offset=0, limit=50)


def test_a_name_is_found_whatever_its_width_case_or_spaces(store):
    _named(store, "c_zh", "张 三")
    _named(store, "c_en", "Ｌｉ　Ｌｅｉ")  # full-width letters and an ideographic space
    _named(store, "c_de", "Jürgen STRAẞE")
    for typed in ("张三", " 张  三 ", "张\u3000三"):
        assert _all(store, typed) == ["c_zh"]
    for typed in ("li lei", "LiLei", "LI LEI", "Ｌｉ Ｌｅｉ", "lilei"):
        assert _all(store, typed) == ["c_en"]
    assert _all(store, "jürgen strasse") == ["c_de"]
    assert _all(store, "li") == [] and _all(store, "张") == [] and _all(store, "   ") == []


def test_a_rename_replaces_the_entry_and_an_older_name_arriving_late_does_not(store):
    _named(store, "c_a", "Wang Fang", t=1000)
    with store.transaction():
        store.put_attributes([("c_a", [FieldValue("name", "Wang Li", 3000, "staff/ops", "pf_1")])])
        # A till that was offline uploads the profile it had: older, it changes neither the name nor the index.
        store.put_attributes([("c_a", [FieldValue("name", "Wang Fang", 2000, "pos/S1", "e-late")])])
    assert _all(store, "Wang Li") == ["c_a"]
    assert _all(store, "Wang Fang") == []
    with store.transaction():  # cleared by a channel: found by no name any more
        store.put_attributes([("c_a", [FieldValue("name", None, 4000, "web/shop", "e-clear")])])
    assert _all(store, "Wang Li") == []
    # Equal times: the same order as the name itself (source, then event id), whichever arrives first.
    with store.transaction():
        store.put_attributes([("c_a", [FieldValue("name", "Zhao Yun", 5000, "web/shop", "e-2"),
                                       FieldValue("name", "Zhao Lei", 5000, "web/shop", "e-1")])])
    assert [v.value for v in store.attributes(["c_a"]) if v.field == "name"] == ["Zhao Yun"]
    assert (_all(store, "Zhao Yun"), _all(store, "Zhao Lei")) == (["c_a"], [])


def test_only_the_name_field_is_indexed(store):
    with store.transaction():
        store.create_record("c_a", phone=None, at="T1")
        store.put_attributes([("c_a", [FieldValue("city", "Li Lei", 1, "web", "e1"),
                                       FieldValue("attributes.nick", "Li Lei", 1, "web", "e1")])])
    assert _all(store, "Li Lei") == []


def test_a_merged_customer_is_found_by_the_name_of_any_of_its_records_and_an_erasure_removes_it(store):
    _named(store, "c_a", "Chen Jing")
    _named(store, "c_b", "陈静")
    with store.transaction():
        store.merge("c_a", "c_b", merge_id="m1", cause={}, at="T2")
    assert (_all(store, "Chen Jing"), _all(store, "陈静")) == (["c_a"], ["c_a"])
    with store.transaction():
        store.unmerge("m1", by="ops", at="T3")
    assert _all(store, "陈静") == ["c_b"]
    erasure = ErasureRow("er_1", "c_b", ("c_b",), "asked", "admin", "T4", {})
    with store.transaction():
        store.erase(["c_b"], erasure=erasure, pseudonyms=[])
    assert _all(store, "陈静") == [] and _all(store, "Chen Jing") == ["c_a"]


def test_a_scope_sees_only_its_stores_customers_and_pages_stay_whole(store):
    for n, owner in enumerate(["S1", "S2", "S1", None, "S1"]):
        _named(store, f"c_{n}", "Liu Yang")
        if owner is not None:
            store.put_owners([OwnerRow(f"c_{n}", owner, "T1")])
    assert _all(store, "Liu Yang") == ["c_0", "c_1", "c_2", "c_3", "c_4"]
    assert _all(store, "liu yang", frozenset({"S1"})) == ["c_0", "c_2", "c_4"]
    assert store.customers_named("Liu Yang", stores=frozenset({"S1"}), offset=0, limit=2) == ["c_0", "c_2"]
    assert store.customers_named("Liu Yang", stores=frozenset({"S1"}), offset=2, limit=2) == ["c_4"]
    assert _all(store, "Liu Yang", frozenset({"S3"})) == [] and _all(store, "Liu Yang", frozenset()) == []


def _reopened(store, name_key: bytes):
    if isinstance(store, SqliteIdentityStore):
        return SqliteIdentityStore(store.db.path, name_key=name_key)
    assert isinstance(store, MongoIdentityStore)
    return MongoIdentityStore(store.mdb, name_key=name_key)


def test_the_index_is_rebuilt_from_the_sealed_names_once_for_a_key_that_did_not_build_it(store):
    _named(store, "c_a", "Sun Li")
    _named(store, "c_b", "Sun Li")
    _named(store, "c_gone", None)
    with store.transaction():
        assert store.rebuild_name_index(at="T2")  # first start: names kept before the index
        assert not store.rebuild_name_index(at="T3")
    assert _all(store, "sun li") == ["c_a", "c_b"]
    other = _reopened(store, OTHER_KEY)
    assert _all(other, "Sun Li") == []  # an entry made with another key matches nothing
    with other.transaction():
        assert other.rebuild_name_index(at="T4")
        assert not other.rebuild_name_index(at="T5")
    assert _all(other, "Sun Li") == ["c_a", "c_b"]
    assert _all(store, "Sun Li") == []  # the old key's entries are gone with the rebuild
