"""Kafka in a test: what reached the broker (`read_topic` once, `KafkaTail` incrementally), the
consumer groups' lag, and a `FakeMessage` with the interface of confluent-kafka's `Message`
for tests with a fake client (and the in-memory broker, memory_kafka.py).
"""

import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from backbone.conf import backbone_settings
from backbone.envelope import Envelope
from backbone.kafka import client_config, group_id, logical_topic, physical_topic
from backbone.topics import topics as declared_topics

from .waiting import Timeout

_LEADER_NOT_THERE_YET = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE}


@dataclass(frozen=True)
class KafkaRecord:
    """One record as read back: `topic` is the logical name (without the namespace)."""

    topic: str
    partition: int
    offset: int
    key: str
    headers: dict[str, str]
    value: bytes
    raw_headers: list[tuple[str, bytes]]

    @property
    def envelope(self) -> Envelope:
        return Envelope.from_headers(self.raw_headers)

    @property
    def type(self) -> str:
        return self.envelope.type

    @property
    def event_id(self) -> str:
        return self.headers["ce_id"]

    @classmethod
    def from_message(cls, message: Message) -> "KafkaRecord":
        raw_headers = list(message.headers() or [])
        return cls(
            topic=logical_topic(message.topic() or ""),
            partition=message.partition() or 0,
            offset=message.offset() or 0,
            key=(message.key() or b"").decode(errors="replace"),
            headers={name: (value or b"").decode(errors="replace") for name, value in raw_headers},
            value=message.value() or b"",
            raw_headers=raw_headers,
        )


def read_topic(
    topic: str,
    *,
    keys: Collection[str] | None = None,
    bootstrap: str | None = None,
    at_least: int = 0,
    timeout: float = 30.0,
) -> list[KafkaRecord]:
    """The records of the namespace's `topic` (of `keys`, if given), in (partition, offset)
    order: read from the beginning to every partition's current end, and on until `at_least`
    of them arrived or `timeout` passed (the caller asserts on what came back)."""
    tail = KafkaTail([topic], bootstrap=bootstrap)
    deadline = time.monotonic() + timeout
    try:
        while True:
            records = tail.catch_up(timeout=max(1.0, deadline - time.monotonic()))
            found = [record for record in records if keys is None or record.key in keys]
            if len(found) >= at_least or time.monotonic() >= deadline:
                return sorted(found, key=lambda record: (record.partition, record.offset))
            time.sleep(0.2)
    finally:
        tail.close()


class KafkaTail:
    """Reads every record of the namespace's topics from the beginning, incrementally."""

    def __init__(self, topics: Iterable[str] | None = None, *, bootstrap: str | None = None) -> None:
        config = {
            **client_config(),
            **({"bootstrap.servers": bootstrap} if bootstrap else {}),
            "group.id": f"{backbone_settings.KAFKA_NAMESPACE}test-tail",  # never committed: assign() only
            "enable.auto.commit": False,
            "log_level": 3,
        }
        self.consumer = Consumer(config)
        # Watermark queries on the assigned consumer wait for its fetcher (~0.5 s a partition).
        self.watermarks = Consumer(config)
        partitions = []
        for topic in declared_topics() if topics is None else topics:
            metadata = self.consumer.list_topics(physical_topic(topic), timeout=10).topics[
                physical_topic(topic)
            ]
            partitions += [
                TopicPartition(physical_topic(topic), p, OFFSET_BEGINNING) for p in metadata.partitions
            ]
        self.partitions = partitions
        self.consumer.assign(partitions)
        self.records: list[KafkaRecord] = []

    def _end_of(self, partition: TopicPartition, timeout: float = 20.0) -> int:
        """The partition's high watermark. Right after a topic is made, its leader may not be
        elected yet (NOT_LEADER_FOR_PARTITION, a retriable error): ask again until it is."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return int(self.watermarks.get_watermark_offsets(partition, timeout=10)[1])
            except KafkaException as error:
                kafka_error = error.args[0]
                if time.monotonic() > deadline or not (
                    kafka_error.retriable() or kafka_error.code() in _LEADER_NOT_THERE_YET
                ):
                    raise
                time.sleep(0.2)

    def catch_up(self, timeout: float = 30.0) -> list[KafkaRecord]:
        """Read up to the current end of every partition."""
        ends = {(tp.topic, tp.partition): self._end_of(tp) for tp in self.partitions}
        seen: dict[tuple[str, int], int] = {}
        for record in self.records:
            key = (physical_topic(record.topic), record.partition)
            seen[key] = max(seen.get(key, -1), record.offset)
        deadline = time.monotonic() + timeout
        while any(seen.get(key, -1) + 1 < end for key, end in ends.items()):
            if time.monotonic() > deadline:
                raise Timeout("could not read the topics to their end")
            for message in self.consumer.consume(num_messages=1000, timeout=0.1):
                if message.error():
                    continue
                self.records.append(KafkaRecord.from_message(message))
                seen[(message.topic(), message.partition())] = message.offset()
        return self.records

    def story(self, correlation_id: str) -> list[KafkaRecord]:
        return [record for record in self.catch_up() if record.envelope.correlation_id == correlation_id]

    def close(self) -> None:
        self.consumer.close()
        self.watermarks.close()


def consumer_lag(topics_by_context: dict[str, set[str]]) -> int:
    """Records the contexts' consumer groups have not committed yet on the topics they read."""
    lag = 0
    for context, topics in topics_by_context.items():
        probe = Consumer(
            {
                **client_config(),
                "group.id": group_id(context),
                "log_level": 3,
            }
        )
        try:
            partitions = []
            for topic in topics:
                name = physical_topic(topic)
                metadata = probe.list_topics(name, timeout=10).topics[name]
                partitions += [TopicPartition(name, p) for p in metadata.partitions]
            for committed in probe.committed(partitions, timeout=10):
                end = probe.get_watermark_offsets(committed, timeout=10)[1]
                lag += max(0, end - max(committed.offset, 0))
        finally:
            probe.close()
    return lag


@dataclass(frozen=True)
class FakeMessage:
    """A record as confluent-kafka hands it over (`Message`'s accessors), for fake clients:
    a fake consumer's poll() result or a fake producer's delivery report."""

    topic_: str
    partition_: int
    offset_: int
    key_: bytes | None = None
    value_: bytes | None = None
    headers_: list[tuple[str, bytes]] | None = None

    def topic(self) -> str:
        return self.topic_

    def partition(self) -> int:
        return self.partition_

    def offset(self) -> int:
        return self.offset_

    def key(self) -> bytes | None:
        return self.key_

    def value(self) -> bytes | None:
        return self.value_

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self.headers_

    def error(self) -> None:
        return None
