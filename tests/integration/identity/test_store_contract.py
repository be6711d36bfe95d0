"""Identity's store contract, part 1: records, identifiers, merges, unmerges and conflicts.

Every adapter (SQLite, mongomock, a real MongoDB when ``CRM_TEST_MONGODB_URL`` is set) must give
exactly these answers; the expected values are written out by hand.
"""

from __future__ import annotations

import mongomock
import pytest

from services.identity.app import open_store
from services.identity.domain.resolution import Found
from services.identity.store import ConflictRow, IdentifierRow, MergeRow, NewRecord, RecordRow
from services.identity.store.mongo import MongoIdentityStore
from services.identity.store.sqlite import SqliteIdentityStore

PHONE = ("phone", "+8613800138000")
OPENID = ("wechat_openid", "oX-1")
EMAIL = ("email", "li@example.com")
MEMBER = ("member_id", "M-1")


def _records(store, *ids: str, phone_of: dict | None = None, at: str = "2026-01-01T00:00:00.000000Z") -> None:
    with store.transaction():
        for rid in ids:
            store.create_record(rid, phone=(phone_of or {}).get(rid), at=at)


def test_create_record_reads_back_and_a_second_create_changes_nothing(store):
    with store.transaction():
        store.create_record("c_a", phone="+8613800138000", at="T1")
        store.create_record("c_b", phone=None, at="T2")
        store.create_record("c_a", phone="+8613900139000", at="T9")
    assert store.record("c_a") == RecordRow("c_a", "c_a", None, "+8613800138000", "T1", "T1")
    assert store.record("c_b") == RecordRow("c_b", "c_b", None, None, "T2", "T2")
    assert store.record("c_nobody") is None
    assert store.group("c_a") == ["c_a"]
    assert store.group("c_nobody") == []
    assert store.customer_count() == 2


def test_create_records_writes_a_batch_of_new_records_and_leaves_an_existing_one_alone(store):
    # Issue 13: identity writes a batch's new records at once (each its own customer, phone sealed).
    with store.transaction():
        store.create_record("c_a", phone="+8613800138000", at="T1")
        store.create_records([NewRecord("c_b", None, "T2"), NewRecord("c_a", "+8613900139000", "T3"),
                              NewRecord("c_c", "+8613700137000", "T4")])
        store.create_records([])
    assert store.record("c_a") == RecordRow("c_a", "c_a", None, "+8613800138000", "T1", "T1")
    assert store.record("c_b") == RecordRow("c_b", "c_b", None, None, "T2", "T2")
    assert store.record("c_c") == RecordRow("c_c", "c_c", None, "+8613700137000", "T4", "T4")
    assert store.customer_count() == 3


def _link_in_turn(store, links: list) -> None:
    for record_id, idents, source, event_id, at in links:
        store.link(record_id, idents, source=source, event_id=event_id, at=at)


def _link_all(store, links: list) -> None:
    # Issue 13: a batch's links in a few statements; each still weighed against the ones before it.
    store.link_all(links)
    store.link_all([])


@pytest.mark.parametrize("link", [_link_in_turn, _link_all])
def test_link_keeps_an_identifier_on_its_first_record_and_remembers_its_earliest_sighting(store, link):
    _records(store, "c_a", "c_b")
    with store.transaction():
        link(store, [
            ("c_a", [EMAIL, MEMBER], "web/shop", "e5", "T5"),
            ("c_a", [EMAIL], "pos/SH-001", "e3", "T3"),  # seen earlier: moves back
            ("c_a", [EMAIL], "wechat/oa", "e9", "T9"),  # seen later: no change
            ("c_b", [EMAIL], "web/shop", "e1", "T1"),  # another record: stays on c_a
            ("c_b", [], "web/shop", "e0", "T0"),
        ])
    assert store.identifiers(["c_a"]) == [
        IdentifierRow("email", "li@example.com", "c_a", "T3", "pos/SH-001", "e3"),
        IdentifierRow("member_id", "M-1", "c_a", "T5", "web/shop", "e5"),
    ]
    assert store.identifiers(["c_b"]) == []
    assert store.find([EMAIL]) == {EMAIL: Found("c_a", "c_a", False)}


def test_identifiers_of_several_records_come_oldest_first_then_by_type_and_value(store):
    _records(store, "c_a", "c_b")
    with store.transaction():
        store.link("c_b", [("web_user_id", "u2"), ("anonymous_id", "z")], source="web/shop", event_id="e2", at="T2")
        store.link("c_a", [("web_user_id", "u1"), ("email", "b@x.cn")], source="web/shop", event_id="e2", at="T2")
        store.link("c_a", [OPENID], source="wechat/oa", event_id="e1", at="T1")
    got = store.identifiers(["c_a", "c_b"])
    assert [(i.type, i.value, i.record_id) for i in got] == [
        ("wechat_openid", "oX-1", "c_a"),
        ("anonymous_id", "z", "c_b"),
        ("email", "b@x.cn", "c_a"),
        ("web_user_id", "u1", "c_a"),
        ("web_user_id", "u2", "c_b"),
    ]


def test_find_names_record_root_and_whether_the_root_has_a_phone(store):
    _records(store, "c_p", "c_w", phone_of={"c_p": PHONE[1]})
    with store.transaction():
        store.link("c_p", [PHONE, MEMBER], source="pos/SH-001", event_id="e1", at="T1")
        store.link("c_w", [OPENID], source="wechat/oa", event_id="e2", at="T2")
    assert store.find([PHONE, OPENID, EMAIL]) == {PHONE: Found("c_p", "c_p", True), OPENID: Found("c_w", "c_w", False)}
    assert store.find([]) == {}
    with store.transaction():
        store.merge("c_p", "c_w", merge_id="m1", cause={"identifier_type": "wechat_openid"}, at="T3")
    assert store.find([OPENID, MEMBER]) == {OPENID: Found("c_w", "c_p", True), MEMBER: Found("c_p", "c_p", True)}


def test_find_answers_a_whole_batch_of_identifiers_in_one_call(store):
    # Issue 13: identity looks up every identifier of a batch (a thousand events) at once.
    _records(store, "c_p", "c_w", phone_of={"c_p": PHONE[1]})
    known = [("wechat_openid", f"oX-{i}") for i in range(700)]
    with store.transaction():
        store.link("c_p", known[:350], source="wechat/oa", event_id="e1", at="T1")
        store.link("c_w", known[350:], source="wechat/oa", event_id="e2", at="T1")
    wanted = [*known, *[("email", f"nobody{i}@example.com") for i in range(500)]]
    assert store.find(wanted) == {**{i: Found("c_p", "c_p", True) for i in known[:350]},
                                  **{i: Found("c_w", "c_w", False) for i in known[350:]}}


def test_merge_moves_the_merged_customer_with_everything_under_it_and_records_the_cause(store):
    _records(store, "c_a", "c_b", "c_c", phone_of={"c_c": PHONE[1]}, at="T0")
    cause = {"source": "wechat/mini", "event_id": "e7", "identifier_type": "wechat_openid", "identifier": "ps1"}
    with store.transaction():
        assert store.merge("c_b", "c_a", merge_id="m1", cause={"n": 1}, at="T1") == ["c_a"]
        assert store.merge("c_c", "c_b", merge_id="m2", cause=cause, at="T2") == ["c_a", "c_b"]
    assert store.group("c_c") == ["c_a", "c_b", "c_c"]
    assert store.group("c_b") == []
    assert store.record("c_a") == RecordRow("c_a", "c_c", "c_b", None, "T0", "T1")
    assert store.record("c_b") == RecordRow("c_b", "c_c", "c_c", None, "T0", "T2")
    assert store.record("c_c") == RecordRow("c_c", "c_c", None, PHONE[1], "T0", "T0")
    assert store.customer_count() == 1
    assert store.merge_row("m2") == MergeRow("m2", "c_c", "c_b", cause, "T2", None, None)
    assert store.merge_row("m_none") is None
    assert [m.merge_id for m in store.merges(["c_a"])] == ["m1"]
    assert [m.merge_id for m in store.merges(["c_b"])] == ["m2", "m1"]
    assert [m.merge_id for m in store.merges(["c_a", "c_b", "c_c"])] == ["m2", "m1"]
    assert store.merges(["c_nobody"]) == []


def test_merges_at_the_same_moment_are_listed_by_merge_id(store):
    _records(store, "c_s", "c_x", "c_y", "c_z")
    with store.transaction():
        for merged, mid in (("c_y", "m_b"), ("c_z", "m_c"), ("c_x", "m_a")):
            store.merge("c_s", merged, merge_id=mid, cause={}, at="T1")
    assert [m.merge_id for m in store.merges(["c_s"])] == ["m_a", "m_b", "m_c"]


def test_unmerge_gives_the_merged_subtree_back_and_blocks_the_pair(store):
    _records(store, "c_a", "c_b", "c_c", "c_d", phone_of={"c_c": PHONE[1]}, at="T0")
    with store.transaction():
        store.merge("c_b", "c_a", merge_id="m1", cause={}, at="T1")
        store.merge("c_c", "c_b", merge_id="m2", cause={}, at="T2")
        store.merge("c_c", "c_d", merge_id="m3", cause={}, at="T3")
    with store.transaction():
        assert sorted(store.unmerge("m2", by="ops-key", at="T4")) == ["c_a", "c_b"]
    assert store.group("c_b") == ["c_a", "c_b"]
    assert store.group("c_c") == ["c_c", "c_d"]
    assert store.record("c_b") == RecordRow("c_b", "c_b", None, None, "T0", "T4")
    assert store.record("c_a") == RecordRow("c_a", "c_b", "c_b", None, "T0", "T1")
    assert store.record("c_c").updated_at == "T4"
    assert store.customer_count() == 2
    assert store.merge_row("m2") == MergeRow("m2", "c_c", "c_b", {}, "T2", "T4", "ops-key")
    assert store.merge_row("m3").undone_at is None
    assert store.blocked_pairs(["c_b", "c_c"]) == {frozenset({"c_b", "c_c"})}
    assert store.blocked_pairs(["c_c", "c_b", "c_d", "c_b"]) == {frozenset({"c_b", "c_c"})}
    assert store.blocked_pairs(["c_b"]) == set()
    assert store.blocked_pairs(["c_c", "c_d"]) == set()
    # The inner merge can be undone on its own afterwards.
    with store.transaction():
        assert store.unmerge("m1", by="ops-key", at="T5") == ["c_a"]
    assert (store.group("c_a"), store.group("c_b")) == (["c_a"], ["c_b"])
    assert store.blocked_pairs(["c_a", "c_b", "c_c"]) == {frozenset({"c_a", "c_b"}), frozenset({"c_b", "c_c"})}
    assert store.customer_count() == 3


def test_unmerge_of_an_inner_merge_leaves_the_outer_merge_in_place(store):
    _records(store, "c_a", "c_b", "c_c", at="T0")
    with store.transaction():
        store.merge("c_b", "c_a", merge_id="m1", cause={}, at="T1")
        store.merge("c_c", "c_b", merge_id="m2", cause={}, at="T2")
        store.unmerge("m1", by="k", at="T3")  # c_a leaves; c_b stays under c_c
    assert store.group("c_c") == ["c_b", "c_c"]
    assert store.group("c_a") == ["c_a"]
    # c_b, which c_a was separated from, is part of customer c_c now: c_a and c_c stay apart.
    assert store.blocked_pairs(["c_a", "c_c"]) == {frozenset({"c_a", "c_c"})}
    assert store.blocked_pairs(["c_a", "c_b"]) == set()  # c_b is no customer of its own any more


def _conflict(cid: str, at: str, ids: tuple[str, ...], **kw) -> ConflictRow:
    return ConflictRow(conflict_id=cid, kind=kw.pop("kind", "would_merge_two_phone_customers"),
                       identifier_type="wechat_openid", identifier_pseudonym=f"ps-{cid}", customer_ids=ids,
                       source="wechat/mini", event_id=f"e-{cid}", at=at, **kw)


def test_conflicts_are_kept_once_and_listed_newest_first_by_status_and_customer(store):
    x1 = _conflict("x1", "T1", ("c_a", "c_b"))
    x2 = _conflict("x2", "T3", ("c_b", "c_c"))
    x3 = _conflict("x3", "T2", ("c_a", "c_c"), kind="merge_was_undone")
    x0 = _conflict("x0", "T3", ("c_d", "c_e"))
    with store.transaction():
        for c in (x1, x2, x3, x0):
            store.add_conflict(c)
        store.add_conflict(_conflict("x1", "T9", ("c_z", "c_y")))  # the same conflict again: ignored
    everything = dict(status=None, customer_id=None, offset=0, limit=50)
    assert store.conflicts(**everything) == [x0, x2, x3, x1]
    assert store.conflicts(**{**everything, "customer_id": "c_a"}) == [x3, x1]
    assert store.conflicts(**{**everything, "offset": 1, "limit": 2}) == [x2, x3]
    with store.transaction():
        assert store.set_conflict_status("x2", status="dismissed", by="ops-key", note="two sisters") is True
        assert store.set_conflict_status("x_none", status="dismissed", by="ops-key", note=None) is False
    closed = ConflictRow(**{**vars(x2), "status": "dismissed", "resolved_by": "ops-key", "note": "two sisters"})
    assert store.conflicts(**{**everything, "status": "open"}) == [x0, x3, x1]
    assert store.conflicts(**{**everything, "status": "dismissed"}) == [closed]
    assert store.conflicts(**{**everything, "status": "open", "customer_id": "c_b"}) == [x1]


def test_open_store_picks_the_adapter_and_the_service_database(tmp_path):
    sqlite = open_store(f"sqlite:///{tmp_path}/data/crm.db")
    assert isinstance(sqlite, SqliteIdentityStore) and sqlite.db.path == tmp_path / "data" / "crm.identity.db"
    mock = open_store("mongomock://localhost/crm")
    assert isinstance(mock, MongoIdentityStore) and mock.mdb.database.name == "crm_identity"
    with mock.transaction():
        mock.create_record("c_a", phone=None, at="T1")
    assert mock.customer_count() == 1
    client = mongomock.MongoClient()
    prod = open_store("mongodb://db.example:27017/tenant?replicaSet=rs0", mongo_client=client)
    assert isinstance(prod, MongoIdentityStore) and prod.mdb.database.name == "tenant_identity"


def test_the_mongo_store_creates_its_unique_indexes_when_it_opens():
    store = open_store("mongomock://localhost/crm")
    database = store.mdb.database
    unique = {}
    for coll in ("identifiers", "events", "purchases", "refunds", "attributes", "merge_blocks", "parts",
                 "dead_letters"):
        for name, spec in database[coll].index_information().items():
            if spec.get("unique"):
                unique[f"{coll}.{name}"] = sorted(k for k, _ in spec["key"])
    assert unique == {
        "identifiers.type_1_value_1": ["type", "value"],
        "events.source_1_id_1": ["id", "source"],
        "purchases.source_1_id_1": ["id", "source"],
        "refunds.source_1_id_1": ["id", "source"],
        "attributes.record_id_1_field_1": ["field", "record_id"],
        "merge_blocks.a_1_b_1": ["a", "b"],
        "parts.record_id_1_part_1": ["part", "record_id"],
        "dead_letters.fingerprint_1": ["fingerprint"],
    }


@pytest.mark.parametrize("url", ["postgres://x/crm", "crm.db"])
def test_open_store_refuses_an_unknown_store_url(url):
    with pytest.raises(ValueError, match="CRM_STORE_URL"):
        open_store(url)
