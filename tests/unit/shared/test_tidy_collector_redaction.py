"""The collector's redaction rules (deploy/otel-collector.yaml) mask the phone families and e-mails the services'
own redactor masks, and leave timestamps, ids and amounts alone.

The processor runs the patterns with Go's regexp (RE2 syntax): ASCII ``\\b`` and ``[0-9]``, no lookaround.
Python's ``re`` with ``re.ASCII`` reads such patterns the same way, so the test applies them as the collector
does: each match of each pattern replaced by ``****``. Older processor versions keep the patterns in a map (no
set order), so every rotation of the list and of its reverse is tried and each outcome checked."""

from __future__ import annotations

import re

import pytest
import yaml

from shared.privacy import redact
from tests.conftest import ROOT
from tests.unit.shared.test_atrest_redaction import KEPT, PHONES, TOUCHING

CONFIG = yaml.safe_load((ROOT / "deploy" / "otel-collector.yaml").read_text(encoding="utf-8"))
PATTERNS = CONFIG["processors"]["redaction"]["blocked_values"]
RULES = [re.compile(p, re.ASCII) for p in PATTERNS]


ORDERS = [RULES[i:] + RULES[:i] for i in range(len(RULES))]
ORDERS += [list(reversed(order)) for order in ORDERS]


def collector_masks(value: str) -> set[str]:
    """What the collector may make of ``value``: one outcome per order it may apply the patterns in."""
    outcomes = set()
    for order in ORDERS:
        masked = value
        for rule in order:
            masked = rule.sub("****", masked)
        outcomes.add(masked)
    return outcomes


def test_the_patterns_are_re2_patterns():
    # What RE2 refuses and Python accepts: lookaround, backreferences, possessive and atomic groups; and \d or
    # \w, which RE2 reads as ASCII only (the patterns say [0-9] so that both engines read the same).
    for pattern in PATTERNS:
        assert not re.search(r"\(\?<?[=!]|\(\?>|\\[1-9dDwWsS]|[*+?}]\+", pattern), pattern


@pytest.mark.parametrize(("region", "notation", "tail"), PHONES, ids=[p[0] for p in PHONES])
def test_every_region_and_notation_the_redactor_masks_is_masked_by_the_collector_too(region, notation, tail):
    value = f"customer said: call me on {notation}, thanks"
    assert "[redacted]" in redact(value)
    for masked in collector_masks(value):
        assert masked.startswith("customer said: call me on ") and masked.endswith(", thanks")
        assert "****" in masked and tail not in "".join(ch for ch in masked if ch.isdigit())


@pytest.mark.parametrize("value", [
    *TOUCHING, "请回电 135－1234－0001 谢谢", "call 135–1234–0001", "+86 (135) 1234-0001", "0086 135 1234 0001",
    "86 13800138000", "+44 20 7946 0958", "+81 90-1234-5678",
])
def test_a_phone_touching_punctuation_or_chinese_text_or_in_another_notation_is_masked(value):
    for masked in collector_masks(value):
        assert "****" in masked
        assert not re.search(r"12340001|91234567|0013 ?8000|7946 ?0958|1234-5678", masked), masked


@pytest.mark.parametrize("value", [
    *KEPT, "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7 at 10.0.12.200:9092",
])
def test_timestamps_ids_amounts_and_longer_numbers_stay(value):
    assert redact(value) == value
    assert collector_masks(value) == {value}


def test_emails_are_masked_including_one_that_is_a_phone():
    # Whether the phone or the e-mail pattern comes first, nothing of the address's local part stays.
    masked = collector_masks("wrote from 13512340001@163.com and zhang.san@example.com.cn today")
    assert masked == {"wrote from **** and **** today", "wrote from ****@163.com and **** today"}
