"""One phone detector (shared.privacy.phone_spans) behind both the log redactor and the masking of free text."""

from __future__ import annotations

import pytest

from shared.access import masking
from shared.privacy import phone_spans, redact

# Separators a Chinese input method or a word processor types between digit groups: the fullwidth hyphen,
# the en dash, the fullwidth slash. The old masking's own digit-run pattern did not read across them.
IME_NOTATIONS = ["135－1234－0001", "135–1234–0001", "135／1234／0001", "（135）1234－0001"]


@pytest.mark.parametrize("written", IME_NOTATIONS)
def test_a_phone_written_with_an_input_method_s_separators_is_masked_in_free_text(written):
    complaint = f"店员态度差，请回电 {written} 谢谢"
    assert masking.text(complaint) == "店员态度差，请回电 *******0001 谢谢"
    assert redact(complaint) == "店员态度差，请回电 [redacted] 谢谢"


@pytest.mark.parametrize("text", [
    "Call 135.1234.0001 or +852 5123 4567, paid 268.00",
    "电话13512340001请回电，或者 (415) 555-0100",
    "order T-20261120-000123 on 2026-11-20, ticket 123456789012",
])
def test_masking_and_the_redactor_find_the_same_phones(text):
    spans = phone_spans(text)
    redacted = redact(text)
    masked = masking.scrub(text)
    for start, end in spans:
        assert text[start:end] not in redacted and text[start:end] not in masked
    assert redacted.count("[redacted]") == len(spans)
