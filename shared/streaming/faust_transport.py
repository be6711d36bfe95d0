"""faust's aiokafka transport with a shorter fetch wait.

faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500`` and offers no setting for it.
Against the embedded broker an idle partition then answers a fetch only when that wait runs out,
so every event waited about half a second before identity saw it. A consumer that waits at most
``fetch_max_wait_ms`` (100 ms by default, ``CRM_FETCH_MAX_WAIT_MS``) sees it in a few milliseconds;
under load fetches return as soon as data is there, so throughput is unchanged.
"""

from __future__ import annotations

from faust.serializers.schemas import Schema
from faust.transport.drivers import aiokafka as faust_aiokafka


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    fetch_max_wait_ms = 100

    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this when the consumer starts (it builds its fetcher then).
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """The aiokafka transport whose worker consumers use :attr:`_ConsumerThread.fetch_max_wait_ms`."""

    Consumer = _Consumer


def use_short_fetch_wait(app, fetch_max_wait_ms: int) -> None:
    """Give a faust app the transport above (creating it connects nothing)."""
    _ConsumerThread.fetch_max_wait_ms = fetch_max_wait_ms
    app.transport = Transport(app.conf.broker_consumer, app)


class RawSchema(Schema):
    """Keys and values as the broker gave them, without faust's serializer registry.

    The agents read ``event.message.key`` and ``.value`` (bytes) and never the decoded ones, and the
    ``raw`` codec returns those same bytes: going through the registry and codec per message was a few
    percent of a consumer's CPU for nothing.
    """

    def __init__(self) -> None:
        super().__init__(key_serializer="raw", value_serializer="raw")

    def loads_key(self, app, message, *, loads=None, serializer=None):
        return message.key

    def loads_value(self, app, message, *, loads=None, serializer=None):
        return message.value


def raw_topic(app, *names: str):
    """A faust topic over ``names`` whose events carry the message's bytes undecoded."""
    return app.topic(*names, schema=RawSchema())
