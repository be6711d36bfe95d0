"""The log and span redactor: phones of every region customers come from, in any notation, and e-mails;
timestamps, ids, amounts and dates stay as they are."""

from __future__ import annotations

import json
import logging

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from shared.observability.logs import setup_logging
from shared.observability.telemetry import JsonLinesSpanExporter, RedactingExporter
from shared.privacy import redact, redact_digits

PHONES = [
    ("CN dots", "135.1234.0001", "12340001"),
    ("CN dashes", "135-1234-0001", "12340001"),
    ("CN spaces", "135 1234 0001", "12340001"),
    ("CN plain", "13512340001", "12340001"),
    ("CN +86", "+86 135 1234 0001", "12340001"),
    ("CN 0086", "0086-135-1234-0001", "12340001"),
    ("HK +852", "+852 9123 4567", "91234567"),
    ("HK national", "9123 4567", "91234567"),
    ("HK 00852", "00852 9123-4567", "91234567"),
    ("TW national", "0912 345 678", "912345678"),
    ("TW +886", "+886 912 345 678", "912345678"),
    ("SG national", "8123 4567", "81234567"),
    ("SG +65", "+65 8123 4567", "81234567"),
    ("US brackets", "(415) 555-0100", "5550100"),
    ("US dashes", "415-555-2671", "5552671"),
    ("US +1 dots", "+1 650.253.0000", "2530000"),
    ("MO +853", "+853 6612 3456", "66123456"),
]


@pytest.mark.parametrize(("region", "notation", "tail"), PHONES, ids=[p[0] for p in PHONES])
def test_every_region_and_notation_is_redacted_as_a_whole(region, notation, tail):
    text = f"customer said: call me on {notation}, thanks"
    out = redact(text)
    assert out == "customer said: call me on [redacted], thanks"
    assert tail not in "".join(ch for ch in out if ch.isdigit())


TOUCHING = [
    "phone=13512340001", '{"phone":"+85291234567"}', "电话13512340001请回电", "phone:13512340001;",
    "tel13512340001", "call tel13512340001x now", "mobile+85291234567", "hk91234567ok",
]
KEPT = [
    "order T-20261120-000123 paid 268.00 on 2026-11-20 at SH-001, ticket 123456789012",
    '"start_ns":1796213877082117404',
    "2026-11-20T10:15:00+08:00 took 1700000000000 ns",
    "customer c_8f3a91b2c4 merged m_0123456789abcdef, pseudonym a13512340001f",
    "135123400019 is an id, 913512340001 too",
    "points 12500 balance 1234567",
]


@pytest.mark.parametrize("text", TOUCHING)
def test_a_phone_touching_punctuation_or_chinese_text_is_redacted(text):
    assert "12340001" not in redact(text) and "91234567" not in redact(text)
    assert "[redacted]" in redact(text)


@pytest.mark.parametrize("text", KEPT)
def test_timestamps_ids_amounts_and_longer_numbers_stay(text):
    assert redact(text) == text


def test_emails_are_redacted_including_an_email_that_is_a_phone():
    out = redact("wrote from 13512340001@163.com and zhang.san@example.com.cn today")
    assert out == "wrote from [email] and [email] today"


def test_redact_digits_keeps_its_old_contract_for_mainland_mobiles():
    assert redact_digits("call 138 0013 8000 now") == "call [redacted] now"


def test_a_log_line_and_its_exception_carry_no_phone_or_email(capsys):
    setup_logging("atrest-test")
    log = logging.getLogger("atrest.test")
    try:
        raise ValueError("bad phone +852 9123 4567 from a@b.example")
    except ValueError:
        log.exception("failed for %s / %s", "135.1234.0001", "zhang@example.com")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    text = json.dumps(line)
    assert "91234567" not in text.replace(" ", "") and "9123 4567" not in text
    assert "1234.0001" not in text and "example.com" not in text and "a@b" not in text
    assert line["message"] == "failed for [redacted] / [email]"
    assert "ValueError: bad phone [redacted] from [email]" in line["exc_info"]


def test_span_attributes_events_and_status_are_redacted_in_the_file_and_for_exporters(tmp_path):
    path = tmp_path / "traces.jsonl"
    captured = []

    class Keep:
        def export(self, spans):
            captured.extend(spans)

        def shutdown(self):
            pass

        def force_flush(self, timeout_millis=0):
            return True

    provider = TracerProvider(resource=Resource.create({"service.name": "crm-test"}))
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    provider.add_span_processor(SimpleSpanProcessor(RedactingExporter(Keep())))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("s", attributes={"note": "reach +65 8123 4567 or (415) 555-0100"}) as span:
        span.record_exception(ValueError("phone 0912 345 678, mail li@example.org"))
    text = path.read_text()
    assert "8123 4567" not in text and "555-0100" not in text and "[redacted]" in text
    (span,) = captured
    assert span.attributes["note"] == "reach [redacted] or [redacted]"
    message = span.events[0].attributes["exception.message"]
    assert message == "phone [redacted], mail [email]"
