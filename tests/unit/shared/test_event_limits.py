"""Limits every channel event meets wherever it enters: size, nesting, an RFC 3339 time, a currency code."""

from __future__ import annotations

import json

import pytest

from shared.contract.events import MAX_EVENT_DEPTH, InvalidEvent, check_size, parse_event
from shared.streaming.batch import Incoming, process_batch
from tests.unit.shared.test_batch import FakeStore, apply, clock


def page_view(**extra) -> dict:
    return {"specversion": "1.0", "id": "e-1", "source": "pos/SH-001", "type": "crm.page_view",
            "time": "2026-05-01T10:00:00+08:00",
            "data": {"identity": {"member_id": "M-1"}, "url": "https://shop.example/"}, **extra}


def nested(levels: int):
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize("levels", [MAX_EVENT_DEPTH, MAX_EVENT_DEPTH + 1, 199, 300])
def test_nesting_is_judged_the_same_from_bytes_and_from_a_parsed_body(levels):
    event = page_view(blob=nested(levels - 1))  # the event object is the first level
    outcomes = []
    for form in (event, json.dumps(event).encode()):
        try:
            parse_event(form)
            outcomes.append("ok")
        except InvalidEvent as exc:
            outcomes.append(exc.code)
    expected = "ok" if levels <= MAX_EVENT_DEPTH else "too_deep"
    assert outcomes == [expected, expected]


def test_brackets_inside_strings_do_not_count_as_nesting():
    assert parse_event(json.dumps(page_view(note="[" * 500 + "{" * 500)).encode()).id == "e-1"


def test_size_is_checked_on_the_raw_bytes():
    check_size(b"x" * 100, 100)
    with pytest.raises(InvalidEvent) as exc:
        check_size(b"x" * 101, 100)
    assert exc.value.code == "too_large" and exc.value.reasons == ["event: 101 bytes is more than the maximum of 100"]


@pytest.mark.parametrize("time", [1700000000, 1700000000.5, "1700000000", True])
def test_an_epoch_number_is_not_an_event_time(time):
    for form in (page_view(time=time), json.dumps(page_view(time=time)).encode()):
        with pytest.raises(InvalidEvent) as exc:
            parse_event(form)
        assert exc.value.code == "invalid_event" and exc.value.reasons[0].startswith("time: ")


def test_a_json_string_is_not_an_event():
    with pytest.raises(InvalidEvent) as exc:
        parse_event(json.dumps(json.dumps(page_view())).encode())
    assert exc.value.code == "invalid_event"


@pytest.mark.parametrize("currency, ok", [("CNY", True), ("cny", True), ("USD", True), ("US", False),
                                          ("C" * 100_000, False), ("元", False), (3, False)])
def test_a_currency_is_a_three_letter_code(currency, ok):
    event = {**page_view(), "type": "crm.purchase",
             "data": {"identity": {"member_id": "M-1"}, "order_id": "o-1", "amount": "1.00", "currency": currency}}
    if ok:
        assert parse_event(event).data.currency == currency.upper()
    else:
        with pytest.raises(InvalidEvent) as exc:
            parse_event(event)
        assert exc.value.reasons[0].startswith("data.currency: ") and len(exc.value.reasons[0]) < 200


def test_a_consumer_dead_letters_a_message_over_the_limit_before_decoding_it():
    store, decoded = FakeStore(), []

    def decode(msg: Incoming) -> dict:
        decoded.append(msg.offset)
        return json.loads(msg.value)

    small = {"id": "a"}
    big = {"id": "b", "blob": "x" * 2000}
    batch = [Incoming(json.dumps(item).encode(), "crm.channel.pos", 0, n, []) for n, item in enumerate([small, big])]
    outcome = process_batch(batch, store=store, service="svc", prefix="t.", clock=clock, decode=decode,
                            apply=apply(store), max_bytes=1000)
    assert decoded == [0] and list(store.rows) == ["a"]
    (letter,) = store.letters.values()
    assert (letter.code, letter.offset, letter.value) == ("too_large", 1, batch[1].value)
    assert (outcome.processed, outcome.dead_lettered) == (1, 1)
