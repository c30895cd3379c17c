"""What `manage.py audit` reads from Kafka: the ce_ids at given offsets, and committed offsets.

It never joins a consumer group: records are read by assigning partitions, and a group's
committed offsets are asked for with the admin API, so auditing a running shop changes nothing.
"""

import time
from collections.abc import Iterable, Sequence
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from backbone.kafka import admin_config, consumer_config, namespaced

from .audit import RecordIds

_TIMEOUT = 10.0


class KafkaReader:
    def __init__(self) -> None:
        self._consumer = Consumer(
            consumer_config(namespaced("audit"), **{"enable.partition.eof": True, "fetch.max.bytes": 8 << 20})
        )
        self._admin = AdminClient(admin_config())

    def ids_at(self, topic: str, partition: int, offsets: Sequence[int]) -> RecordIds:
        """Read the partition from the first of `offsets` to the last (or its end)."""
        low, high = self._consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=_TIMEOUT)
        wanted = set(offsets)
        start, stop = max(min(offsets), low), min(max(offsets) + 1, high)
        ids: dict[int, str | None] = {}
        if start < stop:
            self._read(TopicPartition(topic, partition, start), stop, wanted, ids)
        return RecordIds(low=low, high=high, ids=ids)

    def _read(self, start: TopicPartition, stop: int, wanted: set[int], ids: dict[int, str | None]) -> None:
        self._consumer.assign([start])
        try:
            position, waited_since = start.offset, time.monotonic()
            while position < stop:
                # consume() returns once it has this many records (or at the timeout): ask for
                # no more than are left, so the last call does not wait for records never coming.
                messages = self._consumer.consume(num_messages=min(1000, stop - position), timeout=1.0)
                if not messages:
                    if time.monotonic() - waited_since > _TIMEOUT:
                        raise TimeoutError(
                            f"Kafka sent nothing from {start.topic}/{start.partition}@{position}"
                        )
                    continue
                waited_since = time.monotonic()
                for message in messages:
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            return
                        raise RuntimeError(f"reading {start.topic}/{start.partition}: {error}")
                    offset = message.offset()
                    if offset is None:
                        continue
                    position = offset + 1
                    if offset in wanted:
                        ids[offset] = _ce_id(message.headers())
        finally:
            self._consumer.unassign()

    def committed(self, group: str, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The group's committed offsets (-1 where it has committed none)."""
        request = [ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for t, p in partitions])]
        futures = self._admin.list_consumer_group_offsets(request, request_timeout=_TIMEOUT)
        result: Any = next(iter(futures.values())).result()
        return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions}

    def close(self) -> None:
        self._consumer.close()


def _ce_id(headers: Any) -> str | None:
    pairs = headers.items() if isinstance(headers, dict) else headers or []
    for name, value in pairs:
        if name == "ce_id":
            return value.decode(errors="replace") if isinstance(value, bytes) else value
    return None
