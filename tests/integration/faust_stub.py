"""Enough of a faust app for a service's ``agents.register`` without a broker: it records the timers (name ->
(interval, function)) and the tasks a worker runs as it starts, so a test can run them itself."""

from __future__ import annotations


class RecordingFaust:
    """Records what ``agents.register`` declares; agents and topics are accepted and ignored."""

    def __init__(self) -> None:
        self.timers: dict = {}
        self.tasks: list = []

    def topic(self, *names, **kw):
        return names

    def agent(self, channel, name):
        return lambda fn: fn

    def timer(self, interval, name):
        return lambda fn: self.timers.setdefault(name, (interval, fn))

    def task(self, fn):
        self.tasks.append(fn)
        return fn
