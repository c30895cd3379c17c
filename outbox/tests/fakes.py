"""A fake Kafka producer implementing the relay's `Producer` port, for unit tests."""

import zlib
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from backbone.envelope import Headers
from backbone.testing import FakeMessage
from outbox.publisher import DeliveryCallback


@dataclass(frozen=True)
class Produced:
    topic: str
    key: str
    value: str
    headers: dict[str, str]


@dataclass
class FakeProducer:
    """Delivers on poll()/flush() like librdkafka, with programmable trouble:

    `fail_keys`: those records fail in their delivery report; `fail_event_ids`: those fail
    once; `refuse_keys`: produce() raises for them; `queue_limit`: produce() raises
    BufferError when that many records wait; `stalled`: nothing is delivered;
    `no_metadata`: metadata requests fail (with `stalled`: Kafka is unreachable); `fatal`:
    failures are fatal errors; `slow`: poll(0) finds no reports yet, only waiting polls and
    flush() do.
    """

    partitions: int = 3
    fail_keys: Collection[str] = ()
    fail_event_ids: set[str] = field(default_factory=set)
    refuse_keys: Collection[str] = ()
    queue_limit: int | None = None
    stalled: bool = False
    no_metadata: bool = False
    fatal: bool = False
    slow: bool = False
    produced: list[Produced] = field(default_factory=list)
    buffer_errors: int = 0
    purged: int = 0
    _queue: list[tuple[DeliveryCallback, KafkaError | None, FakeMessage]] = field(default_factory=list)
    _offsets: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))

    def produce(
        self,
        topic: str,
        value: str | bytes | None = None,
        key: str | bytes | None = None,
        *,
        headers: Headers | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        assert isinstance(key, str)
        assert isinstance(value, str)
        assert on_delivery is not None
        if self.queue_limit is not None and len(self._queue) >= self.queue_limit:
            self.buffer_errors += 1
            raise BufferError("Local: Queue full")
        if key in self.refuse_keys:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "too large"))
        record = Produced(topic, key, value, {name: _text(raw) for name, raw in headers or []})
        partition = zlib.crc32(key.encode()) % self.partitions
        self._queue.append((on_delivery, self._error_for(record), self._place(topic, partition)))
        self.produced.append(record)

    def _error_for(self, record: Produced) -> KafkaError | None:
        if record.key in self.fail_keys or record.headers["ce_id"] in self.fail_event_ids:
            self.fail_event_ids.discard(record.headers["ce_id"])
            return KafkaError(KafkaError._MSG_TIMED_OUT, "delivery failed", fatal=self.fatal)
        return None

    def _place(self, topic: str, partition: int) -> FakeMessage:
        offset = self._offsets[(topic, partition)]
        self._offsets[(topic, partition)] += 1
        return FakeMessage(topic, partition, offset)

    def poll(self, timeout: float = 0) -> int:
        if self.stalled or (self.slow and timeout == 0):
            return 0
        delivered, self._queue = self._queue, []
        for callback, error, message in delivered:
            callback(error, message)  # type: ignore[arg-type]
        return len(delivered)

    def flush(self, timeout: float = 0) -> int:
        self.poll(timeout)
        return len(self._queue)

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        if self.no_metadata:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Connection refused"))
        return _Metadata({name for name, _ in self._offsets})

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        if in_queue:
            self.purged += len(self._queue)
            self._queue = []

    def __len__(self) -> int:
        return len(self._queue)

    def keys_in_order(self) -> list[str]:
        return [record.key for record in self.produced]


@dataclass
class _Metadata:
    names: set[str]

    @property
    def topics(self) -> dict[str, object]:
        return dict.fromkeys(self.names, object())


def _text(raw: str | bytes | None) -> str:
    """A header value as text: the relay sends text, librdkafka encodes it (so may bytes)."""
    return raw.decode() if isinstance(raw, bytes) else raw or ""
