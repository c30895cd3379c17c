"""Bare confluent-kafka clients: the baselines, and the bench's view of what is on Kafka."""

import time
import uuid
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from backbone.kafka import admin_config, consumer_config, producer_config

Record = tuple[bytes, bytes, list[tuple[str, bytes]]]  # key, value, headers


def create_topic(physical_name: str, partitions: int) -> None:
    """Create a bench-only topic (idempotent), e.g. the baseline's destination."""
    admin = AdminClient(admin_config())  # kept alive until the futures resolve
    futures = admin.create_topics([NewTopic(physical_name, partitions, 1)], request_timeout=15)
    for future in futures.values():
        try:
            future.result(timeout=20)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def partition_count(physical_name: str) -> int:
    metadata = AdminClient(admin_config()).list_topics(physical_name, timeout=10)
    return len(metadata.topics[physical_name].partitions)


class Watermarks:
    """Total high watermark of a topic: how many records it holds (no compaction here)."""

    def __init__(self, physical_name: str) -> None:
        self._consumer = Consumer(consumer_config(f"bench-watermarks-{uuid.uuid4().hex[:8]}"))
        self._partitions = [TopicPartition(physical_name, p) for p in range(partition_count(physical_name))]

    def total(self) -> int:
        watermark = self._consumer.get_watermark_offsets
        return sum(watermark(tp, timeout=10, cached=False)[1] for tp in self._partitions)

    def close(self) -> None:
        self._consumer.close()


def produce_all(physical_name: str, records: Sequence[Record], **overrides: Any) -> float:
    """Send `records` with a bare producer (the relay's settings) and wait for every delivery
    report; returns the seconds taken. Raises if any delivery failed."""
    producer = Producer(relay_settings(**overrides))
    failures: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, _message: object) -> None:
        if error is not None:
            failures.append(error)

    # Connect and fetch metadata first, so the timing covers sending, as the relay's does.
    producer.list_topics(physical_name, timeout=10)
    started = time.perf_counter()
    for key, value, headers in records:
        while True:
            try:
                producer.produce(physical_name, value, key, headers=headers, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(60)
    elapsed = time.perf_counter() - started
    if remaining or failures:
        raise RuntimeError(f"bare producer: {remaining} undelivered, {len(failures)} failed ({failures[:1]})")
    return elapsed


def relay_settings(**overrides: Any) -> dict[str, Any]:
    """The relay's own producer settings when it has them, else the backbone's."""
    try:
        from outbox.publisher import relay_producer_config
    except ImportError:
        return producer_config(**overrides)
    return relay_producer_config(**overrides)


def consume_count(physical_name: str, expected: int, *, timeout: float = 120, batch: int = 500) -> float:
    """Read `expected` records from the start with a bare consumer (consume() in batches, as
    the runner can, and a manual commit per batch as the runner must); returns the seconds
    from the first record's arrival to the last's, so connecting is not timed (the runner it
    is compared with is warm too)."""
    consumer = Consumer(consumer_config(f"bench-bare-{uuid.uuid4().hex[:8]}"))
    partitions = [TopicPartition(physical_name, p, 0) for p in range(partition_count(physical_name))]
    consumer.assign(partitions)
    seen = 0
    deadline = time.perf_counter() + timeout
    started: float | None = None
    try:
        while seen < expected:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"bare consumer read {seen}/{expected} records in {timeout:.0f}s")
            messages = consumer.consume(batch, timeout=0.5)
            if messages and started is None:
                started = time.perf_counter()
            for message in messages:
                if message.error() is None:
                    # Touch what a handler would need, so the baseline is not a no-op.
                    message.value()
                    message.headers()
                    seen += 1
            if messages:
                consumer.commit(asynchronous=True)
        return time.perf_counter() - (started or deadline)
    finally:
        consumer.close()


def listen_for_arrivals(
    config: dict[str, Any], topic: str, ready: Any, stop: Any, results: Any, header: str = "ce_id"
) -> None:
    """Child-process body: read `topic` from its end and note when each record arrives
    (time.time() by the value of `header`); send the {id: time} map on `results` when stopped.

    A process of its own, so the GIL of the process that writes never delays a reading.
    """
    consumer = Consumer(config)
    partitions = []
    for partition in range(_partitions(consumer, topic)):
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        partitions.append(TopicPartition(topic, partition, high))
    consumer.assign(partitions)
    consumer.poll(0.2)  # connects and starts fetching
    arrivals: dict[str, float] = {}
    ready.set()
    while not stop.is_set():
        # poll() returns as soon as one record is there; consume(n) would wait for n of them.
        message = consumer.poll(0.05)
        arrived = time.time()
        if message is not None and message.error() is None:
            for name, value in message.headers() or ():
                if name == header:
                    arrivals[value.decode()] = arrived
    consumer.close()
    results.put(arrivals)


def _partitions(client: Any, topic: str) -> int:
    return len(client.list_topics(topic, timeout=10).topics[topic].partitions)
