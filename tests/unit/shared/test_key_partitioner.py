"""The relay's partitioner sends every keyed message to the partition kafka-python's default would choose."""

from __future__ import annotations

import pytest
from kafka.partitioner import DefaultPartitioner

from shared.streaming.kafka import KeyHashPartitioner


class _Cluster:
    """The part of kafka-python's ClusterMetadata a partitioner reads."""

    def __init__(self, partitions: dict[str, set[int]], available: dict[str, set[int]] | None = None) -> None:
        self._partitions = partitions
        self._available = available or partitions

    def topics(self) -> set[str]:
        return set(self._partitions)

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(self._partitions[topic]) if topic in self._partitions else None

    def available_partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(self._available[topic]) if topic in self._available else None


def test_keyed_messages_go_where_the_default_sends_them():
    # A keyed message goes by all the topic's partitions, available or not (crm.points has a leader missing).
    cluster = _Cluster({"crm.customer.events": {0, 1, 2, 3}, "crm.points": set(range(12)), "odd": {7, 3, 11}},
                       available={"crm.customer.events": {0, 1, 2, 3}, "crm.points": {0, 5}, "odd": {7, 3, 11}})
    ours, default = KeyHashPartitioner(kept_keys=1024), DefaultPartitioner()
    keys = [f"c_{i:020x}".encode() for i in range(500)] + [b"", b"\x00\xff", "客户-1".encode()]
    for topic in ("crm.customer.events", "crm.points", "odd"):
        for key in keys + keys:  # the second round is answered from the kept hashes
            assert ours.partition(topic, key, key, b"v", b"v", cluster) == \
                default.partition(topic, key, key, b"v", b"v", cluster)
    assert ours._hash.cache_info().hits == 5 * len(set(keys))  # every call after the first round


def test_a_key_follows_a_change_in_the_topics_partitions():
    ours = KeyHashPartitioner()
    key = b"c_000000000000000000042"
    before = ours.partition("t", key, key, None, None, _Cluster({"t": {0, 1, 2, 3}}))
    grown = _Cluster({"t": set(range(7))})
    assert before == DefaultPartitioner().partition("t", key, key, None, None, _Cluster({"t": {0, 1, 2, 3}}))
    assert ours.partition("t", key, key, None, None, grown) == DefaultPartitioner().partition("t", key, key, None, None,
                                                                                              grown)


def test_keyless_messages_go_to_an_available_partition():
    cluster = _Cluster({"t": {0, 1, 2, 3}}, available={"t": {2}})
    assert {KeyHashPartitioner().partition("t", None, None, b"v", b"v", cluster) for _ in range(20)} == {2}


def test_keys_kafka_python_takes_as_bytearray_or_memoryview_go_where_the_default_sends_them():
    # The producer takes a serialized key of any of these types; the kept hashes can hold only bytes.
    cluster = _Cluster({"t": set(range(6))})
    ours, default = KeyHashPartitioner(), DefaultPartitioner()
    for raw in (b"c_000000000000000000042", "客户-7".encode()):
        for key in (bytearray(raw), memoryview(raw), memoryview(bytearray(raw))):
            assert ours.partition("t", key, key, b"v", b"v", cluster) == default.partition("t", raw, raw, b"v", b"v",
                                                                                            cluster)


def test_a_topic_the_metadata_does_not_know_is_refused_as_the_default_refuses_it():
    cluster = _Cluster({"t": {0, 1}})
    with pytest.raises(ValueError, match="not found in ClusterMetadata"):
        DefaultPartitioner().partition("gone", b"k", b"k", b"v", b"v", cluster)
    with pytest.raises(ValueError, match="not found in ClusterMetadata"):
        KeyHashPartitioner().partition("gone", b"k", b"k", b"v", b"v", cluster)
