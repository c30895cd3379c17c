"""Publish batches of outbox rows to Kafka and learn, from delivery reports only, what landed.

The producer is idempotent with `acks=all`, an unlimited delivery timeout and the gap-less
guarantee (see `relay_producer_config`): while Kafka is away records wait in the producer and
are delivered, in order, when it is back; a record that fails for good stops the producer
(a fatal error) instead of letting later records of its partition through. A row counts as
published only when its delivery report says so.
"""

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message

from backbone.envelope import Headers
from backbone.kafka import physical_topic, producer_config
from backbone.tracing import enabled as tracing_enabled
from backbone.tracing import end_span, start_span

from .backoff import Backoff, StopFlag
from .store import PendingRow, Placement

if TYPE_CHECKING:
    from opentelemetry.trace import Span

log = logging.getLogger(__name__)

DeliveryCallback = Callable[[KafkaError | None, Message], None]


class Producer(Protocol):
    """The part of `confluent_kafka.Producer` the relay uses (tests pass fakes)."""

    def produce(
        self,
        topic: str,
        value: str | bytes | None = None,
        key: str | bytes | None = None,
        *,
        headers: Headers | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None: ...

    def poll(self, timeout: float = ...) -> int: ...

    def flush(self, timeout: float = ...) -> int: ...

    def list_topics(self, topic: str | None = None, timeout: float = ...) -> Any: ...

    def purge(self, in_queue: bool = ..., in_flight: bool = ..., blocking: bool = ...) -> None: ...

    def __len__(self) -> int: ...


def relay_producer_config(**overrides: Any) -> dict[str, Any]:
    """The backbone's producer settings, tuned for the relay."""
    return producer_config(
        **{
            # Never give up on a record: a timed-out record followed by a delivered one of
            # the same partition would reorder an aggregate. Outages are reported instead.
            "message.timeout.ms": 0,
            # A permanent failure stops the producer (fatal error) rather than leave a gap.
            "enable.gapless.guarantee": True,
            # Reconnect quickly once Kafka is back (the default backs off to 10 s).
            "reconnect.backoff.max.ms": 1000,
            # The relay reports outages in its own words; librdkafka's are repetitive.
            "log_level": 0,
            **overrides,
        }
    )


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    row_id: int
    topic: str
    partition: int | None
    error: str
    fatal: bool


@dataclass(frozen=True, slots=True)
class Stall:
    """Records have waited for Kafka's confirmation longer than usual."""

    in_flight: int
    topics: frozenset[str]
    retry_in: float


@dataclass
class OrderGuard:
    """Keeps each aggregate in commit order across the batches of one window.

    Once a row is not confirmed, later rows of its aggregate (key) are neither produced nor
    marked, and later rows of its partition are not marked: they all stay unpublished and are
    published again after it, as duplicates that consumers drop by ce_id.
    """

    keys: set[tuple[str, str]] = field(default_factory=set)
    partitions: set[tuple[str, int]] = field(default_factory=set)

    def holds_back(self, row: PendingRow) -> bool:
        return (row.topic, row.key) in self.keys

    def block(self, row: PendingRow, partition: int | None = None) -> None:
        self.keys.add((row.topic, row.key))
        if partition is not None:
            self.partitions.add((row.topic, partition))

    def safe_to_mark(self, rows: Sequence[PendingRow], outcome: "BatchOutcome") -> list[Placement]:
        """The confirmed rows, in commit order, up to the first unconfirmed one of their key
        or partition; blocks the keys and partitions of the unconfirmed ones from now on."""
        placements = outcome.placements
        if not (self.keys or self.partitions or outcome.failures) and len(placements) == len(rows):
            # Everything confirmed and nothing held back (the usual batch): no rule to apply.
            return [placements[row.id] for row in rows]
        safe: list[Placement] = []
        for row in rows:
            placement = outcome.placements.get(row.id)
            if placement is None:
                failure = outcome.failures.get(row.id)
                self.block(row, failure.partition if failure else None)
            elif not self.holds_back(row) and (row.topic, placement.partition) not in self.partitions:
                safe.append(placement)
        return safe


@dataclass
class BatchOutcome:
    placements: dict[int, Placement] = field(default_factory=dict)
    failures: dict[int, DeliveryFailure] = field(default_factory=dict)
    failed_keys: set[tuple[str, str]] = field(default_factory=set)
    # Records handed to the producer but not confirmed (the relay was stopped meanwhile).
    unconfirmed: int = 0
    # A fatal producer error raised by poll() or flush() rather than reported on a record.
    fatal_error: str | None = None
    # With tracing on: the span of each record in flight, by row id.
    spans: "dict[int, Span]" = field(default_factory=dict)

    @property
    def fatal(self) -> bool:
        return self.fatal_error is not None or any(failure.fatal for failure in self.failures.values())

    def note_fatal(self, raised: KafkaException) -> None:
        """Keep a fatal error the producer raised, so the relay replaces the producer and
        retries; any other exception out of poll() or flush() is a bug and propagates."""
        error = raised.args[0] if raised.args and isinstance(raised.args[0], KafkaError) else None
        if error is None or not error.fatal():
            raise raised
        # E.g. a principal without WRITE on any topic gets no idempotent producer id
        # (CLUSTER_AUTHORIZATION_FAILED): the producer is unusable, the rows stay unpublished.
        self.fatal_error = f"{error.name()}: {error.str()}"

    def delivered(self, row: PendingRow, error: KafkaError | None, message: Message) -> None:
        """A record's delivery report (called by the producer, inside poll() or flush())."""
        if error is None:
            partition, offset = message.partition(), message.offset()
            # A delivered record always has both; only the client's types allow None.
            assert partition is not None
            assert offset is not None
            self.placements[row.id] = Placement(row.id, partition, offset)
        else:
            self.fail(row, error, partition=message.partition())

    def delivered_traced(self, row: PendingRow, error: KafkaError | None, message: Message) -> None:
        span = self.spans.pop(row.id, None)
        if span is not None:
            _describe_delivery(span, row, error, message)
        self.delivered(row, error, message)

    def start_span(self, row: PendingRow) -> None:
        # Named as OpenTelemetry's messaging conventions name a producer span: `send <topic>`.
        span = start_span(f"send {row.topic}", row.header("ce_traceparent"), kind="producer")
        if span is not None:
            self.spans[row.id] = span

    def end_span(self, row: PendingRow, error: object) -> None:
        span = self.spans.pop(row.id, None)
        if span is not None:
            end_span(span, error)

    def fail(self, row: PendingRow, error: KafkaError, partition: int | None) -> None:
        partition = partition if partition is not None and partition >= 0 else None
        self.failures[row.id] = DeliveryFailure(
            row_id=row.id,
            topic=row.topic,
            partition=partition,
            error=f"{error.name()}: {error.str()}",
            fatal=error.fatal(),
        )
        # Later rows of this aggregate must not overtake it, not even into the producer.
        self.failed_keys.add((row.topic, row.key))


class Publisher:
    """Produces rows, serves delivery reports, waits for every confirmation."""

    def __init__(
        self,
        producer: Producer,
        *,
        stop: StopFlag,
        on_stall: Callable[[Stall], None],
        max_backoff: float = 30.0,
        first_stall_report: float = 1.0,
        shutdown_grace: float = 10.0,
        flush_slice: float = 0.2,
    ) -> None:
        self._producer = producer
        self._stop = stop
        self._on_stall = on_stall
        self._max_backoff = max_backoff
        self._first_stall_report = first_stall_report
        self._shutdown_grace = shutdown_grace
        self._flush_slice = flush_slice
        self._physical_topics: dict[str, str] = {}

    def send(self, rows: Sequence[PendingRow], guard: OrderGuard) -> BatchOutcome:
        """Hand the rows to the producer (delivery continues in the background)."""
        outcome = BatchOutcome()
        # One bound method for the batch: each record's callback is a partial of it.
        traced = tracing_enabled()
        delivered = outcome.delivered_traced if traced else outcome.delivered
        for row in rows:
            if (guard.keys or outcome.failed_keys) and (
                guard.holds_back(row) or (row.topic, row.key) in outcome.failed_keys
            ):
                continue  # an earlier row of this aggregate is not on Kafka
            if not self._produce(row, outcome, delivered, traced=traced):
                break
        return outcome

    def confirm(self, outcome: BatchOutcome, topics: set[str]) -> None:
        """Wait until Kafka confirmed (or refused) every record sent; report long waits.

        A stopping relay still waits up to `shutdown_grace` seconds for the batch in hand.
        """
        # A report schedule, not a retry: no jitter, so the reports come at the times they name.
        backoff = Backoff(first=self._first_stall_report, cap=self._max_backoff, spread=0.0)
        next_report = time.monotonic() + backoff.next_delay()
        give_up_at: float | None = None
        while (in_flight := self._flush(outcome)) > 0:
            if self._stop.is_set():
                give_up_at = give_up_at or time.monotonic() + self._shutdown_grace
                if time.monotonic() >= give_up_at:
                    outcome.unconfirmed = in_flight
                    return
            if time.monotonic() >= next_report:
                retry_in = backoff.next_delay()
                next_report = time.monotonic() + retry_in
                self._on_stall(Stall(in_flight=in_flight, topics=frozenset(topics), retry_in=retry_in))

    def publish(self, rows: Sequence[PendingRow], guard: OrderGuard) -> BatchOutcome:
        outcome = self.send(rows, guard)
        self.confirm(outcome, {row.topic for row in rows})
        return outcome

    def _produce(
        self, row: PendingRow, outcome: BatchOutcome, delivered: "Delivered", *, traced: bool
    ) -> bool:
        """Hand one row to the producer; False when the relay is stopping meanwhile."""
        if traced:  # a span from produce to delivery report, in the event's trace
            outcome.start_span(row)
        while True:
            try:
                self._producer.produce(
                    self._physical(row.topic),
                    row.payload,
                    row.key,
                    headers=row.headers,
                    on_delivery=partial(delivered, row),
                )
                break
            except BufferError:
                # The producer's queue is full: serve delivery reports until there is room.
                self._poll(0.1, outcome)
                if self._stop.is_set():
                    outcome.end_span(row, "relay stopped before producing")
                    return False
            except KafkaException as error:  # refused at once, e.g. larger than message.max.bytes
                outcome.fail(row, error.args[0], partition=None)
                outcome.end_span(row, error.args[0])
                break
        self._poll(0, outcome)
        return True

    def _poll(self, timeout: float, outcome: BatchOutcome) -> None:
        try:
            self._producer.poll(timeout)
        except KafkaException as raised:
            outcome.note_fatal(raised)

    def _flush(self, outcome: BatchOutcome) -> int:
        """Serve delivery reports for a slice of time; the records still in flight."""
        try:
            return self._producer.flush(self._flush_slice)
        except KafkaException as raised:
            outcome.note_fatal(raised)
            return len(self._producer)

    def _physical(self, topic: str) -> str:
        try:
            return self._physical_topics[topic]
        except KeyError:
            return self._physical_topics.setdefault(topic, physical_topic(topic))


# What a record's delivery report calls: BatchOutcome.delivered, or delivered_traced.
Delivered = Callable[[PendingRow, KafkaError | None, Message], None]


def _describe_delivery(span: "Span", row: PendingRow, error: KafkaError | None, message: Message) -> None:
    span.set_attribute("messaging.system", "kafka")
    span.set_attribute("messaging.operation.type", "send")
    span.set_attribute("messaging.operation.name", "send")
    span.set_attribute("messaging.destination.name", row.topic)
    span.set_attribute("messaging.kafka.message.key", row.key)
    span.set_attribute("messaging.message.id", row.header("ce_id") or "")
    span.set_attribute("messaging.message.conversation_id", row.header("ce_correlationid") or "")
    if error is None:
        span.set_attribute("messaging.destination.partition.id", str(message.partition()))
        span.set_attribute("messaging.kafka.offset", message.offset() or 0)
    end_span(span, error)
