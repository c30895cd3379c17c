"""Read back what reached Kafka: every partition of a topic, from the beginning."""

import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from backbone.conf import backbone_settings
from backbone.kafka import physical_topic


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: str
    value: bytes
    headers: dict[str, str]

    @property
    def event_id(self) -> str:
        return self.headers["ce_id"]


def read_records(
    topic: str,
    *,
    keys: Collection[str],
    bootstrap: str | None = None,
    at_least: int = 0,
    timeout: float = 30.0,
) -> list[Record]:
    """The records of `keys` on logical `topic`, in (partition, offset) order.

    Reads until every partition's current end, and beyond it until `at_least` records of
    those keys arrived or `timeout` passed (the caller asserts on what came back).
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap or backbone_settings.KAFKA_BOOTSTRAP_SERVERS,
            "group.id": f"test-reader-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "log_level": 0,
        }
    )
    try:
        return _read(consumer, physical_topic(topic), set(keys), at_least, time.monotonic() + timeout)
    finally:
        consumer.close()


def _read(consumer: Consumer, topic: str, keys: set[str], at_least: int, deadline: float) -> list[Record]:
    partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    positions = {p: 0 for p in partitions}
    found: list[Record] = []
    while time.monotonic() < deadline:
        if len(found) >= at_least and all(positions[p] >= ends[p] for p in partitions):
            break
        for message in consumer.consume(500, timeout=0.2):
            if message.error() is not None:
                continue
            positions[message.partition()] = message.offset() + 1
            key = message.key().decode() if message.key() is not None else ""
            if key in keys:
                found.append(_record(message, key))
    return sorted(found, key=lambda record: (record.partition, record.offset))


def _record(message: Message, key: str) -> Record:
    return Record(
        topic=message.topic(),
        partition=message.partition(),
        offset=message.offset(),
        key=key,
        value=message.value(),
        headers={name: value.decode() for name, value in message.headers() or []},
    )
