"""Kafka in memory, behind the same ports as confluent-kafka, for the runner's and relay's logic.

`MemoryBroker` keeps topics (partitions of records with offsets), and each consumer group's
committed offsets, in this process. `broker.consumer(group)` implements the runner's port
(`backbone.consumer.protocol.KafkaConsumer`) and `broker.producer()` the relay's and the
dead-letter publisher's (`outbox.publisher.Producer`), as getsentry/arroyo's `LocalBroker`
stands in for Kafka behind arroyo's consumer and producer interfaces. A test can then run the
real `ConsumerRunner` or `Relay` with no broker at all: ordering per partition, batches,
retries, dead-lettering decisions and offset commits are the code's, not Kafka's.

What only a real broker shows (rebalances between processes, outages, ACLs, compaction,
librdkafka's own buffering) stays with the tests on Kafka. Here one consumer of a group gets
every partition of its topics at its first poll (inside poll(), as librdkafka runs its
rebalance callbacks); a test moves partitions away with `revoke()` or `lose()`.
"""

import threading
import zlib
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_INVALID, TopicPartition

from backbone.kafka import physical_topic

from .kafka import FakeMessage, KafkaRecord

RebalanceCallback = Callable[[Any, list[TopicPartition]], None]
Headers = Sequence[tuple[str, str | bytes | None]] | None


@dataclass(frozen=True)
class Commit:
    """One offset commit a consumer sent: the next offset to read, per (topic, partition)."""

    group: str
    offsets: dict[tuple[str, int], int]
    asynchronous: bool


class MemoryBroker:
    """Topics and consumer groups in memory; thread-safe, so a relay thread and a consumer can
    share it. Topics are created on first use with `partitions` partitions unless declared."""

    def __init__(self, *, partitions: int = 3, poll_wait: float = 0.0) -> None:
        self.default_partitions = partitions
        # How long an empty poll() waits for a record, at most: 0 returns at once (a test in one
        # thread, where nothing can arrive meanwhile); more when another thread produces.
        self.poll_wait = poll_wait
        self._topics: dict[str, list[list[FakeMessage]]] = {}
        self._committed: dict[str, dict[tuple[str, int], int]] = defaultdict(dict)
        self.commits: list[Commit] = []
        # Called with each commit as it happens (a test reads the database's state there).
        self.commit_listeners: list[Callable[[Commit], None]] = []
        self._changed = threading.Condition()

    # --- topics ---------------------------------------------------------------------------------

    def create_topic(self, topic: str, partitions: int | None = None) -> None:
        with self._changed:
            self._topics.setdefault(topic, [[] for _ in range(partitions or self.default_partitions)])

    def partitions(self, topic: str) -> list[list[FakeMessage]]:
        self.create_topic(topic)
        return self._topics[topic]

    def partition_for(self, topic: str, key: bytes | None) -> int:
        """librdkafka's default partitioner for keyed records: CRC32 of the key."""
        return zlib.crc32(key or b"") % len(self.partitions(topic))

    def append(
        self,
        topic: str,
        *,
        key: str | bytes | None,
        value: str | bytes | None,
        headers: Headers = None,
        partition: int | None = None,
    ) -> FakeMessage:
        """Store one record at the end of its partition (by key unless `partition` is given)."""
        raw_key = key.encode() if isinstance(key, str) else key
        raw_value = value.encode() if isinstance(value, str) else value
        raw_headers = [(name, v.encode() if isinstance(v, str) else (v or b"")) for name, v in headers or []]
        with self._changed:
            where = self.partition_for(topic, raw_key) if partition is None else partition
            log = self.partitions(topic)[where]
            message = FakeMessage(topic, where, len(log), raw_key, raw_value, raw_headers)
            log.append(message)
            self._changed.notify_all()
        return message

    def messages(self, topic: str) -> list[FakeMessage]:
        """Every record of `topic` (its name on the broker), in (partition, offset) order."""
        return [message for log in self.partitions(topic) for message in log]

    def read(self, topic: str, *, keys: Collection[str] | None = None) -> list[KafkaRecord]:
        """`read_topic` on this broker: the records of the namespace's logical `topic` (of
        `keys`, if given), in (partition, offset) order."""
        records = map(KafkaRecord.from_message, self.messages(physical_topic(topic)))
        return [record for record in records if keys is None or record.key in keys]

    def end_offsets(self, topic: str) -> dict[int, int]:
        return {partition: len(log) for partition, log in enumerate(self.partitions(topic))}

    # --- consumer groups ------------------------------------------------------------------------

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """The group's committed offset per partition of `topic` (partitions without one left out)."""
        return {p: offset for (name, p), offset in self._committed[group].items() if name == topic}

    def start_group_at_end(self, group: str, topics: Sequence[str]) -> None:
        for topic in topics:
            self.seek_group(group, topic, self.end_offsets(topic))

    def seek_group(self, group: str, topic: str, offsets: dict[int, int]) -> None:
        """Set the group's committed offsets (partition -> next offset), as an operator can."""
        with self._changed:
            for partition, offset in offsets.items():
                self._committed[group][(topic, partition)] = offset

    def _commit(self, group: str, partitions: list[TopicPartition], asynchronous: bool) -> None:
        commit = Commit(group, {(tp.topic, tp.partition): tp.offset for tp in partitions}, asynchronous)
        with self._changed:
            self._committed[group].update(commit.offsets)
            self.commits.append(commit)
        for listener in self.commit_listeners:
            listener(commit)

    def _committed_offset(self, group: str, topic: str, partition: int) -> int:
        return self._committed[group].get((topic, partition), OFFSET_INVALID)

    # --- clients --------------------------------------------------------------------------------

    def consumer(self, group: str) -> "MemoryConsumer":
        return MemoryConsumer(self, group)

    def producer(self) -> "MemoryProducer":
        return MemoryProducer(self)


class MemoryConsumer:
    """The runner's port (backbone.consumer.protocol.KafkaConsumer) on a MemoryBroker."""

    def __init__(self, broker: MemoryBroker, group: str) -> None:
        self.broker = broker
        self.group = group
        self.closed = False
        self._topics: list[str] = []
        self._callbacks: dict[str, RebalanceCallback | None] = {}
        self._positions: dict[tuple[str, int], int] = {}  # assigned partition -> next offset
        self._subscribed = False
        self._pending: list[tuple[str, list[TopicPartition]]] = []  # rebalance callbacks due
        # Run at the start of each poll() (librdkafka runs rebalances there too), in order.
        self.before_poll: list[Callable[[MemoryConsumer], None]] = []

    def subscribe(
        self,
        topics: list[str],
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        on_lost: RebalanceCallback | None = None,
    ) -> None:
        self._topics = list(topics)
        self._callbacks = {"on_assign": on_assign, "on_revoke": on_revoke, "on_lost": on_lost}
        self._subscribed = False

    def revoke(self, partitions: list[TopicPartition]) -> None:
        """At the next poll, another member takes these partitions (on_revoke runs first)."""
        self._pending.append(("on_revoke", partitions))

    def lose(self, partitions: list[TopicPartition]) -> None:
        """At the next poll, these partitions turn out to be someone else's already (on_lost)."""
        self._pending.append(("on_lost", partitions))

    def _rebalance(self) -> None:
        if not self._subscribed:
            self._subscribed = True
            assigned = [
                TopicPartition(topic, partition)
                for topic in self._topics
                for partition in range(len(self.broker.partitions(topic)))
            ]
            for tp in assigned:
                offset = self.broker._committed_offset(self.group, tp.topic, tp.partition)
                self._positions[(tp.topic, tp.partition)] = max(offset, 0)  # earliest without one
            self._call("on_assign", assigned)
        while self._pending:
            name, partitions = self._pending.pop(0)
            self._call(name, partitions)
            for tp in partitions:
                self._positions.pop((tp.topic, tp.partition), None)

    def _call(self, name: str, partitions: list[TopicPartition]) -> None:
        callback = self._callbacks.get(name)
        if callback is not None:
            callback(self, partitions)

    def _take(self, limit: int) -> list[FakeMessage]:
        """Up to `limit` records from the assigned partitions, each partition in offset order."""
        taken: list[FakeMessage] = []
        progress = True
        while len(taken) < limit and progress:
            progress = False
            for (topic, partition), position in list(self._positions.items()):
                log = self.broker.partitions(topic)[partition]
                if position < len(log) and len(taken) < limit:
                    taken.append(log[position])
                    self._positions[(topic, partition)] = position + 1
                    progress = True
        return taken

    def poll(self, timeout: float) -> FakeMessage | None:
        if self.before_poll:
            self.before_poll.pop(0)(self)
        self._rebalance()
        with self.broker._changed:
            taken = self._take(1)
            wait = min(timeout, self.broker.poll_wait)
            if not taken and wait > 0:
                self.broker._changed.wait(wait)
                taken = self._take(1)
        return taken[0] if taken else None

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        with self.broker._changed:
            return self._take(num_messages)

    def commit(
        self, *, offsets: list[TopicPartition], asynchronous: bool = True
    ) -> list[TopicPartition] | None:
        self.broker._commit(self.group, offsets, asynchronous)
        return None if asynchronous else offsets

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(topic, partition) for topic, partition in self._positions]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(
                tp.topic, tp.partition, self._positions.get((tp.topic, tp.partition), OFFSET_INVALID)
            )
            for tp in partitions
        ]

    def committed(self, partitions: list[TopicPartition], timeout: float = -1) -> list[TopicPartition]:
        return [
            TopicPartition(
                tp.topic, tp.partition, self.broker._committed_offset(self.group, tp.topic, tp.partition)
            )
            for tp in partitions
        ]

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]:
        return 0, len(self.broker.partitions(partition.topic)[partition.partition])

    def close(self) -> None:
        self.closed = True
        self._positions.clear()


@dataclass
class MemoryProducer:
    """The relay's producer port (outbox.publisher.Producer) on a MemoryBroker: produce() queues,
    poll() and flush() store the queued records and call their delivery reports, like
    librdkafka. `stalled`: nothing is delivered (Kafka does not answer)."""

    broker: MemoryBroker
    stalled: bool = False
    _queue: list[tuple[str, dict[str, Any], Any]] = field(default_factory=list)

    def produce(
        self,
        topic: str,
        value: str | bytes | None = None,
        key: str | bytes | None = None,
        *,
        headers: Headers = None,
        on_delivery: Callable[[Any, Any], None] | None = None,
        partition: int | None = None,
    ) -> None:
        record = {"key": key, "value": value, "headers": headers, "partition": partition}
        self._queue.append((topic, record, on_delivery))

    def poll(self, timeout: float = 0) -> int:
        if self.stalled:
            return 0
        delivered, self._queue = self._queue, []
        for topic, record, on_delivery in delivered:
            message = self.broker.append(topic, **record)
            if on_delivery is not None:
                on_delivery(None, message)
        return len(delivered)

    def flush(self, timeout: float = -1) -> int:
        self.poll(timeout)
        return len(self._queue)

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        names = [topic] if topic else list(self.broker._topics)
        return _Metadata({name: object() for name in names})

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        if in_queue:
            self._queue = []

    def __len__(self) -> int:
        return len(self._queue)


@dataclass(frozen=True)
class _Metadata:
    topics: dict[str, object]
