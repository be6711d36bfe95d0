"""The one file-reload helper behind the key file, the staff file and the stores registry."""

from __future__ import annotations

import logging
import os

import pytest

from shared.access.reloading import Reloading


def _numbers(text: str | None) -> list[int]:
    return [] if text is None else [int(n) for n in text.split()]


def _write(path, text: str, *, mtime_ns: int) -> None:
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(mtime_ns, mtime_ns))  # a distinct mtime per edit, however fast the edits come


def test_a_file_is_followed_from_absent_to_edited_and_a_broken_edit_keeps_the_last_good_value(tmp_path, caplog):
    path = tmp_path / "numbers.txt"
    numbers = Reloading(path, _numbers, initial=[0], what="numbers file",
                        describe=lambda exc: f"numbers file: {type(exc).__name__}")
    numbers.reload()
    assert numbers.current() == []  # no file: what load makes of None

    _write(path, "1 2", mtime_ns=1_000_000_000)
    assert (numbers.current(), numbers.error) == ([1, 2], None)

    with caplog.at_level(logging.ERROR, logger="shared.access.reloading"):
        _write(path, "1 secret-x", mtime_ns=2_000_000_000)
        assert (numbers.current(), numbers.error) == ([1, 2], "numbers file: ValueError")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "numbers file not reloaded, the last good version stays in force: numbers file: ValueError"]

    _write(path, "3", mtime_ns=3_000_000_000)
    assert (numbers.current(), numbers.error) == ([3], None)


def test_a_broken_file_at_start_up_raises_and_the_file_is_stat_ed_at_most_once_per_interval(tmp_path):
    path = tmp_path / "numbers.txt"
    _write(path, "x", mtime_ns=1_000_000_000)
    with pytest.raises(ValueError):
        Reloading(path, _numbers, initial=[], what="numbers file").reload()

    now = [50.0]
    _write(path, "1", mtime_ns=2_000_000_000)
    numbers = Reloading(path, _numbers, initial=[], what="numbers file", recheck_s=5.0, clock=lambda: now[0])
    numbers.reload()
    assert numbers.current() == [1]
    _write(path, "2", mtime_ns=3_000_000_000)
    now[0] += 4.9
    assert numbers.current() == [1]  # looked 4.9 s ago
    now[0] += 0.1
    assert numbers.current() == [2]
