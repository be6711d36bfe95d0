"""The platform's services running together in the test's process, against the test's real broker.

Each service is built with its own ``create_app`` (its store under the test's data directory, a
clock the test sets) and its consumers are exactly the handlers its faust agents declare
(``service.runner.consumers``). Instead of a faust worker, a kafka-python consumer with every
partition assigned (no consumer group to join: a join takes seconds on this broker) feeds them,
batch by batch through the service's own ``BatchRunner.run_sync``, which relays what they publish.

The platform counts every message published through it (the services' outbox relays, identity's
ingestion route, the test's own sends) and every message each service handled, so "settled" is
exact: every message published so far has been handled by every service that consumes its topic.
The broker's own end offsets cannot tell that (they are unreliable for batched produce).
"""

from __future__ import annotations

import importlib
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
from fastapi.testclient import TestClient
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from crm.platform import SERVICES
from shared.access.revocations import PolledRevocations
from shared.settings import Settings
from shared.streaming.batch import Incoming
from shared.streaming.kafka import Outgoing, Publisher
from shared.streaming.packs import carried

T = TypeVar("T")


class SettableClock:
    """A service's clock: starts at a moment the test chooses and runs on with real time from there
    (so successive readings grow, as a real clock's do); ``set`` moves it anywhere."""

    def __init__(self, start: datetime | None = None) -> None:
        self.set(start or datetime.now(UTC))

    def set(self, moment: datetime) -> None:
        """Make the clock read ``moment`` now."""
        assert moment.tzinfo is not None, "clocks are timezone-aware"
        self._base, self._since = moment, time.monotonic()

    def advance(self, **delta: float) -> datetime:
        """Move the clock on by a ``timedelta(**delta)``."""
        self.set(self() + timedelta(**delta))
        return self()

    def __call__(self) -> datetime:
        return self._base + timedelta(seconds=time.monotonic() - self._since)


class InProcess:
    """One service built against the test's broker, its consumers fed by kafka-python."""

    def __init__(self, name: str, settings: Settings, *, clock: Callable[[], datetime] | None = None,
                 publish: Callable[[list[Outgoing]], None] | None = None, **options: Any) -> None:
        self.name = name
        app = importlib.import_module(f"services.{name}.app")
        if clock is not None:
            options["clock"] = clock
        self.service = app.create_app(settings, publish=publish, **options)
        self.service.faust_app()  # registers its agents, which declare what they consume
        self.topics = sorted({t for _, names, _ in self.service.runner.consumers for t in names})
        # A topic may feed several agents of one service: each takes it.
        self.handles: dict[str, list] = defaultdict(list)
        for _, names, h in self.service.runner.consumers:
            for t in names:
                self.handles[t].append(h)
        self.handled: Counter[str] = Counter()  # messages handled per topic since the last rewind
        self.partitions = [TopicPartition(t, p) for t in self.topics for p in range(settings.topic_partitions)]
        # Every partition assigned directly: no consumer group to join (a join takes seconds on this broker).
        self.consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None,
                                      auto_offset_reset="earliest", enable_auto_commit=False)
        self.consumer.assign(self.partitions)
        self._api: TestClient | None = None

    @property
    def deps(self) -> Any:
        return self.service.deps

    def api(self, key: str) -> TestClient:
        """The service's HTTP API, called with an API key."""
        return TestClient(self.service.api, headers={"Authorization": f"Bearer {key}"})

    def pump(self) -> int:
        """Handle whatever is waiting, one batch per topic, as the agents would."""
        handled = 0
        for records in self.consumer.poll(timeout_ms=50).values():
            by_topic: dict[str, list[Incoming]] = defaultdict(list)
            for m in carried(records):  # the messages of a pack one by one, as the agents take them
                by_topic[m.topic].append(m)
            for topic, batch in by_topic.items():
                for handle in self.handles[topic]:
                    self.service.runner.run_sync(handle, batch)
                self.handled[topic] += len(batch)
                handled += len(batch)
        return handled

    def run_timer(self, work: Callable[[], Any]) -> Any:
        """Run a timer's work as the service's timers do: in the batch runner, which relays its outbox."""
        return self.service.runner.run_sync(lambda _batch: _Relay.of(work()), [])

    @contextmanager
    def holding(self, topic: str) -> Iterator[None]:
        """Leave ``topic`` unread while the block runs (a message that arrives late, after others)."""
        held = [tp for tp in self.partitions if tp.topic == topic]
        assert held, f"{self.name} does not consume {topic}"
        self.consumer.pause(*held)
        try:
            yield
        finally:
            self.consumer.resume(*held)

    def rewind(self) -> None:
        """Consume everything again from the first offset (a replay, or a crash that lost every commit)."""
        self.consumer.seek_to_beginning(*self.partitions)
        self.handled.clear()

    def close(self) -> None:
        self.consumer.close()


class _Relay:
    """A timer's result as the batch runner wants it: something with an outbox."""

    def __init__(self, outbox: list) -> None:
        self.outbox = outbox

    @classmethod
    def of(cls, result: Any) -> Any:
        return result if hasattr(result, "outbox") else cls([])


def _timers() -> dict[str, Callable[[InProcess], Any]]:
    """What each service's faust timers run (the agents modules register exactly these)."""
    from services.alerts.handlers import timers as alerts_timers
    from services.campaigns.handlers import timers as campaigns_timers
    from services.loyalty.handlers import timers as loyalty_timers

    def alerts_tick(s: InProcess) -> None:
        # The scheduler's tick, unit by unit as alerts' agents run it (each unit relays its own outbox).
        while True:
            unit = s.run_timer(lambda: alerts_timers.scan_unit("in-process", deps=s.deps))
            if unit.skipped or not unit.more:
                return

    return {
        "loyalty": lambda s: s.run_timer(lambda: loyalty_timers.run_due(deps=s.deps)),
        "alerts": alerts_tick,
        "campaigns": lambda s: s.run_timer(lambda: campaigns_timers.run_due(deps=s.deps, relay=s.service.runner.relay)),
    }


class Platform:
    """The services together; ``settle`` pumps until everything published has been handled everywhere."""

    def __init__(self, settings: Settings, *, names: Iterable[str] = SERVICES,
                 clocks: dict[str, SettableClock] | None = None, options: dict[str, dict] | None = None) -> None:
        self.settings = settings
        self.published: Counter[str] = Counter()
        self.clocks = clocks if clocks is not None else {n: SettableClock() for n in names}
        self.services: dict[str, InProcess] = {}
        self._producer: KafkaProducer | None = None
        # Each service's own producer, as its process would have; closed with the platform.
        self._publishers = {name: Publisher(settings, client_id=f"crm-{name}") for name in [*names, "replayer"]}
        for name in names:
            self.services[name] = InProcess(name, settings, clock=self.clocks.get(name),
                                            publish=self._counting(self._publishers[name].send),
                                            **(options or {}).get(name, {}))
        if "identity" in self.services:
            # As deployed: the other services fetch identity's list of signed-out tokens from identity.
            transport = httpx.ASGITransport(app=self.services["identity"].service.api)
            for name, one in self.services.items():
                auth = one.service.api.state.auth
                if name != "identity":
                    auth.revocations = PolledRevocations(settings, tokens=auth.tokens, transport=transport)

    def __getitem__(self, name: str) -> InProcess:
        return self.services[name]

    def _counting(self, publish: Callable[[list[Outgoing]], None]) -> Callable[[list[Outgoing]], None]:
        def counted(messages: list[Outgoing]) -> None:
            publish(messages)  # returns once the broker acknowledged every message
            self.published.update(m.topic for m in messages)

        return counted

    def send(self, topic: str, values: Iterable[bytes], *, key: bytes | None = None) -> int:
        """Publish raw messages to a topic as an outside producer would; returns how many."""
        if self._producer is None:
            self._producer = KafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all")
        futures = [self._producer.send(topic, value, key=key) for value in values]
        self._producer.flush()
        for f in futures:
            f.get(timeout=30)
        self.published[topic] += len(futures)
        return len(futures)

    def set_clocks(self, moment: datetime, *names: str) -> None:
        """Set these services' clocks (all but identity's when none are named) to ``moment``."""
        for name in names or [n for n in self.clocks if n != "identity"]:
            self.clocks[name].set(moment)

    def pump(self) -> int:
        """One round: every service handles what is waiting for it."""
        return sum(s.pump() for s in self.services.values())

    def drained(self) -> bool:
        """Whether every service has handled every message published so far on the topics it reads."""
        return all(s.handled[t] >= self.published[t] for s in self.services.values() for t in s.topics)

    def pump_until(self, predicate: Callable[[], T], *, timeout: float = 30, what: str = "condition") -> T:
        """Pump until ``predicate()`` is truthy (checked between rounds); returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            last = predicate()
            if last:
                return last
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what} (last: {last!r}); published "
                                     f"{dict(self.published)}, handled "
                                     f"{ {n: dict(s.handled) for n, s in self.services.items()} }")
            self.pump()

    def settle(self, *, timeout: float = 30) -> None:
        """Pump until every service has handled everything published, including what that caused."""
        self.pump_until(self.drained, timeout=timeout, what="every message handled by every consumer")

    def run_timers(self, *names: str) -> None:
        """Run the scheduled work of these services (all that have timers when none are named), then settle."""
        timers = _timers()
        for name in names or [n for n in self.services if n in timers]:
            timers[name](self.services[name])
        self.settle()

    def replay(self) -> None:
        """Every service consumes everything again from the first offset, and settles."""
        for s in self.services.values():
            s.rewind()
        self.settle(timeout=60)

    def republish(self, topics: Iterable[str]) -> int:
        """Publish every message of these topics once more (duplicates, as a producer retry or a mirror
        makes them), keys and headers included; returns how many."""
        copies: list[Outgoing] = []
        for topic in topics:
            want = self.published[topic]
            if not want:
                continue
            reader = KafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap, group_id=None,
                                   auto_offset_reset="earliest", enable_auto_commit=False)
            reader.assign([TopicPartition(topic, p) for p in range(self.settings.topic_partitions)])
            got: list[Outgoing] = []
            deadline = time.monotonic() + 30
            while len(got) < want:
                assert time.monotonic() < deadline, f"could not read back {topic}"
                for records in reader.poll(timeout_ms=100).values():
                    got += [Outgoing(m.topic, m.value, m.key, list(m.headers)) for m in carried(records)]
            reader.close()
            copies += got
        if copies:
            self._counting(self._publishers["replayer"].send)(copies)
        return len(copies)

    def close(self) -> None:
        for s in self.services.values():
            s.close()
        if self._producer is not None:
            self._producer.close()
        for publisher in self._publishers.values():
            publisher.close()
