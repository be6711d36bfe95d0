"""Issue 14: how the rows of a member, points or orders file are read, checked and turned into events."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from services.identity.domain import imports as rows
from services.identity.domain.cleaning import Cleaning
from shared.contract.events import parse_event

SH = ZoneInfo("Asia/Shanghai")
RULES = rows.Rules(Cleaning(), zone=SH, default_time=datetime(2026, 12, 1, tzinfo=UTC),
                   now=datetime(2026, 12, 5, 4, 0, tzinfo=UTC))


def _read(text: str, columns=rows.MEMBER_COLUMNS, required=rows.MEMBER_IDS):
    return list(rows.read_rows(iter(text.splitlines(keepends=True)), columns=columns, required_any=required))


def test_csv_rows_carry_their_line_numbers_across_blank_lines_and_quoted_newlines():
    text = 'phone,name\n139 6172 8450,Wang\n\n13912345679,"Li\nXiao"\n13912345670\n'
    assert _read(text) == [(2, {"phone": "139 6172 8450", "name": "Wang"}),
                           (4, {"phone": "13912345679", "name": "Li\nXiao"}), (6, None)]


def test_json_lines_are_read_with_their_line_numbers():
    text = '{"phone": "13961728450", "tier": null}\nnot json\n\n{"member_id": 7}\n'
    assert _read(text) == [(1, {"phone": "13961728450", "tier": ""}), (2, None), (4, {"member_id": "7"})]


@pytest.mark.parametrize(("header", "why"), [("phone,nmae", "unknown columns nmae"),
                                             ("name,city", "the header needs one of phone, member_id, wechat_openid"),
                                             ("phone,phone", "a column is named twice")])
def test_a_header_that_cannot_be_imported_stops_the_file(header, why):
    with pytest.raises(rows.FileError, match=why):
        _read(header + "\n1,2\n")


def _member(**values: str) -> dict[str, str]:
    return {c: values.get(c, "") for c in rows.MEMBER_COLUMNS}


def test_a_member_row_becomes_a_profile_a_consent_and_a_tier_with_ids_from_its_content():
    row = _member(phone="+86 139-6172-8450", member_id="M1", name="王芳", gender="F", birthday="1990-05-01",
                  email="Wang@Example.com", city="上海", join_date="2020-03-04", home_store="SH-001", tier="B",
                  tier_since="2026-12-01", sms_consent="yes")
    built = rows.member_events(7, row, RULES)
    assert built.errors == []
    profile, consent, tier = built.events
    assert [e["type"] for e in built.events] == ["crm.profile", "crm.consent", "crm.tier_import"]
    assert profile["data"] == {"identity": {"phone": "+8613961728450", "member_id": "M1"}, "name": "王芳",
                               "gender": "F", "city": "上海", "email": "wang@example.com", "birthday": "1990-05-01",
                               "attributes": {"join_date": "2020-03-04"}, "home_store": "SH-001"}
    # The profile and consent are the file's word as of the import's start (a newer channel value wins).
    assert profile["time"] == consent["time"] == "2026-12-01T00:00:00+00:00" and profile["source"] == rows.SOURCE
    assert consent["data"]["granted"] is True and consent["data"]["purpose"] == "sms"
    assert tier["time"] == "2026-12-01T00:00:00+08:00" and tier["data"]["tier"] == "B"
    # It carries the import's moment: loyalty holds the tier until the first review after the later of the two.
    assert tier["data"]["imported_at"] == "2026-12-01T00:00:00+00:00"
    for e in built.events:
        parse_event(e)  # every event is one the contract takes
    assert parse_event(tier).data.imported_at == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_event({**tier, "data": {"identity": tier["data"]["identity"], "tier": "B"}}).data.imported_at is None
    with pytest.raises(ValueError):  # as the event's time: an RFC 3339 string, not epoch seconds
        parse_event({**tier, "data": {**tier["data"], "imported_at": 1764547200}})
    # The same row again (another line, another file) gives the same ids; another value other ids.
    assert [e["id"] for e in rows.member_events(99, row, RULES).events] == [e["id"] for e in built.events]
    assert rows.member_events(7, {**row, "city": "北京"}, RULES).events[0]["id"] != profile["id"]


def test_of_two_rows_for_one_member_the_later_line_is_newer_and_none_is_after_the_import_start():
    old = rows.member_events(2, _member(phone="13961728450", name="Old", sms_consent="yes"), RULES, lines=4)
    new = rows.member_events(3, _member(phone="13961728450", name="New", sms_consent="no"), RULES, lines=4)
    # A millisecond a line (identity keeps times to the millisecond), the file's last line at the start itself.
    assert [e["time"] for e in old.events] == ["2026-11-30T23:59:59.998000+00:00"] * 2
    assert [e["time"] for e in new.events] == ["2026-11-30T23:59:59.999000+00:00"] * 2
    last = rows.member_events(4, _member(phone="13961728450", tier="gold"), RULES, lines=4)
    assert last.events[0]["time"] == "2026-12-01T00:00:00+00:00"
    # The tier stays dated at its own moment (tier_since, here missing: the start) and carries the start.
    assert last.events[1]["time"] == last.events[1]["data"]["imported_at"] == "2026-12-01T00:00:00+00:00"
    # The ids do not depend on the line: the same row again is the same events.
    row = _member(phone="13961728450", name="New", sms_consent="no")
    assert [e["id"] for e in rows.member_events(3, row, RULES, lines=9).events] == [e["id"] for e in new.events]


def test_a_bad_member_row_is_rejected_whole_with_each_column_and_never_the_value():
    row = _member(phone="12345", email="nobody", birthday="1990-13-01", sms_consent="maybe", tier="Gold Plus",
                  join_date="2999-01-01")
    built = rows.member_events(5, row, RULES)
    assert built.events == []
    assert {e.column for e in built.errors} == {"phone", "email", "birthday", "sms_consent", "tier", "join_date"}
    assert all(e.line == 5 for e in built.errors)
    text = repr(built.errors)
    for value in ("12345", "nobody", "1990-13-01", "maybe", "Gold Plus", "2999"):
        assert value not in text
    assert rows.member_events(6, _member(name="x"), RULES).errors == [
        rows.RowError(6, "phone", "needs one of phone, member_id, wechat_openid")]


def test_identical_lot_rows_are_distinct_lots_and_a_lot_needs_its_earn_date():
    lot = {"phone": "13961728450", "member_id": "", "points": "120", "earned_at": "2026-01-02"}
    first, second = (rows.lot_events(2, lot, RULES, occurrence=n).events[0] for n in (0, 1))
    assert first["id"] != second["id"] and first["data"]["points"] == 120
    assert first["type"] == "crm.points_opening" and first["time"] == "2026-01-02T00:00:00+08:00"
    parse_event(first)
    assert [e.column for e in rows.lot_events(3, {**lot, "earned_at": ""}, RULES, occurrence=0).errors] == [
        "earned_at"]
    assert [e.column for e in rows.lot_events(3, {**lot, "points": "1.5"}, RULES, occurrence=0).errors] == ["points"]


def test_an_order_row_maps_its_columns_to_a_purchase_keyed_by_its_order_id():
    cols = rows.OrderColumns(phone="mobile", amount="total", date="paid", store="shop", order="no")
    row = {"mobile": "13961728450", "total": "268.5", "paid": "2025-11-20T10:15:00+08:00", "shop": "SH-001",
           "no": "T-1"}
    (event,) = rows.order_events(2, row, RULES, cols).events
    assert event["id"] == "o-SH-001/T-1" and event["type"] == "crm.purchase"
    assert event["data"]["amount"] == "268.50" and event["data"]["store_id"] == "SH-001"
    parse_event(event)
    bad = rows.order_events(3, {**row, "total": "abc", "mobile": "1"}, RULES, cols).errors
    assert {e.column for e in bad} == {"mobile", "total"}


def test_a_file_without_a_header_fails_without_repeating_its_first_member_in_the_error():
    with pytest.raises(rows.FileError) as raised:
        _read("13961728450,王芳,F,wang@example.com\n13912345679,李四,M,\n")
    reason = str(raised.value)
    assert reason.startswith("the first line is not a header")
    assert not any(value in reason for value in ("13961728450", "王芳", "wang@example.com"))


@pytest.mark.parametrize(("written", "meant"), [("2023/1/5", "2023-01-05T00:00:00+08:00"),
                                                ("2023/01/05", "2023-01-05T00:00:00+08:00"),
                                                ("2023-1-5", "2023-01-05T00:00:00+08:00"),
                                                ("2023/1/5 9:30", "2023-01-05T09:30:00+08:00"),
                                                ("2023/1/5 09:30:15", "2023-01-05T09:30:15+08:00")])
def test_excel_style_dates_are_local_dates_and_times(written, meant):
    lot = rows.lot_events(2, {"phone": "13961728450", "points": "100", "earned_at": written}, RULES, occurrence=0)
    assert lot.errors == [] and lot.events[0]["time"] == meant
    member = rows.member_events(2, _member(phone="13961728450", birthday=written.split()[0]), RULES)
    assert member.errors == [] and member.events[0]["data"]["birthday"] == "2023-01-05"


def test_a_birthday_with_a_time_or_an_impossible_date_is_rejected():
    for written, why in (("1990/1/5 10:00", "must be a date YYYY-MM-DD (or YYYY/M/D)"),
                         ("1990/2/30", "must be a date YYYY-MM-DD (or YYYY/M/D) or an ISO date-time")):
        built = rows.member_events(2, _member(phone="13961728450", birthday=written), RULES)
        assert [(e.column, e.reason) for e in built.errors] == [("birthday", why)]


@pytest.mark.parametrize(("text", "why"), [("", "the file is empty"), ("\r\n \r\n", "the file is empty")])
def test_an_empty_file_fails_rather_than_finishing_with_nothing_imported(text, why):
    with pytest.raises(rows.FileError, match=why):
        _read(text)


def test_an_orders_file_without_its_mapped_amount_or_date_column_fails_at_the_header():
    with pytest.raises(rows.FileError, match="the header has no column paid"):
        list(rows.read_rows(iter(["mobile,total\n", "13961728450,5\n"]), columns=None,
                            required_any=("mobile", "member_id"), required_all=("total", "paid")))


def test_a_json_line_with_a_misspelt_key_fails_the_file_rather_than_dropping_its_value():
    text = '{"phone": "13961728450", "name": "Wang"}\n{"phone": "13961728451", "birth_day": "1990-01-05"}\n'
    with pytest.raises(rows.FileError, match="line 2: unknown keys birth_day; expected some of phone"):
        _read(text)
    with pytest.raises(rows.FileError) as raised:
        _read('{"phone": "13961728450", "王芳": "F"}\n')
    assert "王芳" not in str(raised.value) and str(raised.value).startswith("line 1: a key that is not a column")


def test_a_trailing_empty_column_as_excel_writes_it_loses_nothing_and_a_value_under_it_is_reported():
    text = "phone,name,\r\n13961728450,Wang,\r\n13961728451,Li\r\n13961728452,Zhao,extra\r\n"
    assert _read(text) == [(2, {"phone": "13961728450", "name": "Wang"}), (3, {"phone": "13961728451", "name": "Li"}),
                           (4, None)]


@pytest.mark.parametrize("phone, earned", [("139 6172 8450", "2026/1/2"), ("+86 139-6172-8450", "2026-01-02"),
                                           ("008613961728450", "2026-1-2"), ("13961728450", " 2026-01-02 ")])
def test_the_same_lot_written_in_another_notation_is_still_a_second_lot(phone, earned):
    # Two rows for one member, one amount, one day are two lots however each writes the phone and the date:
    # the occurrence counter must see them as identical, or both would get occurrence 0 and one id.
    plain = {"phone": "13961728450", "member_id": "", "points": "120", "earned_at": "2026-01-02"}
    other = {**plain, "phone": phone, "earned_at": earned}
    assert rows.lot_key(other) == rows.lot_key(plain)
    assert rows.lot_key({**plain, "points": "121"}) != rows.lot_key(plain)
    assert rows.lot_key({**plain, "phone": "13961728451"}) != rows.lot_key(plain)


def test_the_member_files_index_knows_its_members_in_any_order_and_nobody_else():
    index = rows.Members()
    assert index.known([rows.member_hash("phone", "+8613961728471")]) == [False]
    index.add([rows.member_hash("phone", "+8613961728471"), rows.member_hash("member_id", "M-1")])
    index.add([rows.member_hash("phone", "+8613961728471")])  # the same member on a later line
    asked = [rows.member_hash("member_id", "M-1"), rows.member_hash("phone", "+8613961728479"),
             rows.member_hash("phone", "+8613961728471"), rows.member_hash("member_id", "+8613961728471")]
    assert index.known(asked) == [True, False, True, False]
    index.add([rows.member_hash("member_id", "M-2")])  # added after a question: still known with the rest
    assert index.known([rows.member_hash("member_id", "M-2"), asked[0], asked[1]]) == [True, True, False]
