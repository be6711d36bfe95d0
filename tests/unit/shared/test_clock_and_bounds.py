"""Stored timestamps are fixed-width whatever the year, and cursors only decode to what the API issued."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from shared.clock import iso_utc, parse_iso
from shared.http.bounds import decode_cursor, encode_cursor
from shared.http.errors import InvalidInput


@pytest.mark.parametrize("year", [1, 34, 999, 1000, 2026, 9999])
def test_a_timestamp_is_written_fixed_width_and_reads_back(year):
    moment = datetime(year, 12, 26, 11, 52, 7, 123, tzinfo=UTC)
    text = iso_utc(moment)
    assert text == f"{year:04d}-12-26T11:52:07.000123Z" and len(text) == 27
    assert parse_iso(text) == moment


def test_a_row_written_unpadded_by_an_earlier_version_still_reads():
    assert parse_iso("34-12-26T11:52:07.000000Z") == datetime(34, 12, 26, 11, 52, 7, tzinfo=UTC)


def test_timestamps_of_different_years_sort_as_text():
    moments = [datetime(y, 1, 1, tzinfo=UTC) for y in (34, 999, 1000, 2026)]
    assert sorted(iso_utc(m) for m in moments) == [iso_utc(m) for m in moments]


def test_a_cursor_round_trips_and_anything_else_is_invalid_cursor():
    key = (-2_208_988_800_000, "pos/SH-001", "e-1")
    assert decode_cursor(encode_cursor(key), (int, str, str)) == key
    assert decode_cursor(None, (int,)) is None and decode_cursor("", (int,)) is None

    def b64(value) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()

    for forged in ("garbage", "é", "====", b64([2**63, "a", "b"]), b64([1.5, "a", "b"]), b64([True, "a", "b"]),
                   b64(["1", "a", "b"]), b64([1, "a"]), b64([1, "\udfff", "b"]), b64({"a": 1}), b64(None),
                   b64([1, "x" * 1000, "b"])):
        with pytest.raises(InvalidInput) as caught:
            decode_cursor(forged, (int, str, str))
        assert caught.value.code == "invalid_cursor", forged
