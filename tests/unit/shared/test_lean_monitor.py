"""The consumers' faust Monitor keeps what faust itself reads and nothing else per message."""

from __future__ import annotations

from faust.types import TP

from shared.settings import Settings
from shared.streaming.faust_transport import LeanMonitor
from shared.streaming.kafka import faust_app


def test_the_platform_app_runs_the_lean_monitor():
    app = faust_app("monitortest", Settings(_env_file=None))
    assert type(app.monitor) is LeanMonitor


def test_it_notes_when_each_partition_last_took_an_event():
    # faust's slow-processing warnings compare this time with the partition's fetch position.
    monitor = LeanMonitor()
    tp = TP("crm.customer-events", 3)
    assert monitor.on_stream_event_in(tp, 41, stream=None, event=None) is None
    first = monitor.stream_inbound_time[tp]
    monitor.on_stream_event_in(tp, 42, stream=None, event=None)
    assert monitor.stream_inbound_time[tp] >= first
    assert set(monitor.stream_inbound_time) == {tp}


def test_per_message_figures_are_not_kept():
    monitor = LeanMonitor()
    tp = TP("crm.customer-events", 0)
    monitor.on_message_in(tp, 7, message=None)
    monitor.on_stream_event_out(tp, 7, stream=None, event=None, state=None)
    monitor.on_message_out(tp, 7, message=None)
    assert (monitor.messages_received_total, monitor.events_total, monitor.messages_active) == (0, 0, 0)
    assert not monitor.messages_received_by_topic and not monitor.events_runtime


def test_commits_are_still_recorded():
    monitor = LeanMonitor()
    tp = TP("crm.customer-events", 1)
    monitor.on_tp_commit({tp: 120})
    assert monitor.tp_committed_offsets == {tp: 120}
