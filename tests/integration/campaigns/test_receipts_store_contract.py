"""Issue 14, delivery receipts: the store operations both adapters must perform alike (and an old SQLite file
taking the touches' new ``step`` column)."""

from __future__ import annotations

import sqlite3

from services.campaigns.domain.delivery import Receipt
from services.campaigns.store import TouchRow
from services.campaigns.store.sqlite import SqliteCampaignsStore


def test_touches_report_which_were_recorded_now_and_keep_their_step(store):
    first = [TouchRow("t_a", "cmp_1", "c_1", "sms", 1_000), TouchRow("t_b", "cmp_1", "c_2", "sms", 1_000)]
    follow = TouchRow("t_f", "cmp_1", "c_1", "mail", 5_000, step="follow_up")
    with store.transaction():
        assert store.add_touches(first) == {"t_a", "t_b"}
        assert store.add_touches([follow, first[0]]) == {"t_f"}
        assert store.add_touches([replace_channel(follow)]) == set()  # a re-sent id changes nothing
        assert store.add_touches([TouchRow("t_x", "cmp_2", "c_1", "sms", 9), TouchRow("t_x", "cmp_2", "c_1", "sms", 9)]
                                 ) == {"t_x"}
    assert store.touches_by_id(["t_f", "t_a", "t_none"]) == {"t_f": follow, "t_a": first[0]}
    assert store.touches_by_id([]) == {}
    assert store.campaign_touches("cmp_1") == [first[0], first[1], follow]
    assert store.campaign_touches("cmp_none") == []
    assert store.touch_count("cmp_1") == 3
    assert store.touches_of(["c_1", "c_none"]) == [TouchRow("t_x", "cmp_2", "c_1", "sms", 9), first[0], follow]
    assert store.touches_of([]) == []
    # A follow-up is a contact like any other: it counts against the contact cap.
    assert store.touch_counts(since_ms=0, until_ms=10_000) == {"c_1": 3, "c_2": 1}


def replace_channel(t: TouchRow) -> TouchRow:
    return TouchRow(t.touch_id, t.campaign_id, t.customer_id, "sms", t.at_ms + 1, t.step)


def test_receipts_are_kept_once_per_source_and_id_and_read_per_campaign(store):
    r1 = Receipt("web/sms", "e1", "t_a", "cmp_1", "delivered", None, 10)
    r2 = Receipt("web/sms", "e2", "t_a", "cmp_1", "replied", None, 20)
    r3 = Receipt("pos/mail", "e1", "t_b", "cmp_1", "failed", "blocked", 15)  # same id, other source: another
    other = Receipt("web/sms", "e3", "t_c", "cmp_2", "opened", None, 30)
    with store.transaction():
        assert store.add_receipts([r1, r2]) == [r1, r2]
        # A redelivery (even with another status) changes nothing; the same receipt twice in a batch: once.
        assert store.add_receipts([Receipt("web/sms", "e1", "t_a", "cmp_1", "failed", "x", 99), r3, r3, other]) == [
            r3, other]
        assert store.add_receipts([]) == []
    assert store.receipts("cmp_1") == [r3, r1, r2]
    # A gateway's reason is free text: sealed at rest, under the service's own key.
    raw = (store.db.conn().execute("SELECT reason FROM receipts WHERE id = 'e1' AND source = 'pos/mail'").fetchone()[0]
           if hasattr(store, "db") else store.mdb["receipts"].find_one({"source": "pos/mail"})["reason"])
    assert raw.startswith("enc1:") and "blocked" not in raw
    assert store.receipts("cmp_2") == [other]
    assert store.receipts_of(["t_a", "t_c", "t_none"]) == [r1, r2, other]
    assert store.receipts_of([]) == []
    assert store.receipts("cmp_none") == []


def test_an_old_sqlite_file_gets_the_step_column_and_its_touches_read_as_first_touches(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE touches (touch_id TEXT PRIMARY KEY, campaign_id TEXT NOT NULL, customer_id TEXT NOT"
                  " NULL, channel TEXT NOT NULL, at_ms INTEGER NOT NULL) WITHOUT ROWID")
        c.execute("INSERT INTO touches VALUES ('t_old', 'cmp_1', 'c_1', 'sms', 7)")
    store = SqliteCampaignsStore(path)
    assert store.campaign_touches("cmp_1") == [TouchRow("t_old", "cmp_1", "c_1", "sms", 7, "initial")]


def test_field_values_fold_a_few_customers_records_newest_first(store):
    from shared.contract.facts import FieldValue
    from shared.storage.membership import Membership

    old = FieldValue("consent.mail", True, 1_000, "web/shop", "e1")
    new = FieldValue("consent.mail", False, 2_000, "web/shop", "e2")
    sms = FieldValue("consent.sms", True, 1_500, "web/shop", "e3")
    with store.transaction():
        store.apply_memberships([Membership("r1", "c1", "t1"), Membership("r2", "c1", "t1"),
                                 Membership("r3", "c3", "t1")])
        store.put_attributes([("r1", [old, sms]), ("r2", [new]), ("r3", [old]), ("lonely", [sms])])
    assert store.field_values(["c1", "c3", "lonely", "c_none"], fields={"consent.mail"}) == {
        "c1": {"consent.mail": new}, "c3": {"consent.mail": old}}
    assert store.field_values(["c1", "lonely"], fields={"consent.mail", "consent.sms"}) == {
        "c1": {"consent.mail": new, "consent.sms": sms}, "lonely": {"consent.sms": sms}}
    assert store.field_values([], fields={"consent.mail"}) == {}


def test_a_receipt_keeps_whether_its_reply_came_from_another_customer(store):
    mixed = Receipt("web/sms", "m1", "t_a", "cmp_1", "replied", None, 10, mismatched=True)
    own = Receipt("web/sms", "m2", "t_a", "cmp_1", "replied", None, 20)
    with store.transaction():
        assert store.add_receipts([mixed, own]) == [mixed, own]
    assert store.receipts("cmp_1") == [mixed, own]
    assert store.receipts_of(["t_a"]) == [mixed, own]
    assert [r.mismatched for r in store.receipts("cmp_1")] == [True, False]


def test_an_old_sqlite_file_gets_the_mismatched_column_and_its_receipts_read_as_matched(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE receipts (source TEXT NOT NULL, id TEXT NOT NULL, touch_id TEXT NOT NULL, campaign_id"
                  " TEXT NOT NULL, status TEXT NOT NULL, reason TEXT, time_ms INTEGER NOT NULL, PRIMARY KEY (source,"
                  " id)) WITHOUT ROWID")
        c.execute("INSERT INTO receipts VALUES ('web/sms', 'e1', 't_a', 'cmp_1', 'replied', NULL, 7)")
    store = SqliteCampaignsStore(path)
    assert store.receipts("cmp_1") == [Receipt("web/sms", "e1", "t_a", "cmp_1", "replied", None, 7, False)]
    with store.transaction():
        assert store.add_receipts([new := Receipt("web/sms", "e2", "t_a", "cmp_1", "replied", None, 8, True)]) == [new]
    assert store.receipts_of(["t_a"])[1].mismatched is True
