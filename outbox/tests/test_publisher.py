"""Unit tests of the publisher and its ordering rule, against the fake producer."""

import threading
from datetime import UTC, datetime

import pytest
from confluent_kafka import KafkaError, KafkaException

from backbone.envelope import Envelope, format_time
from backbone.kafka import physical_topic
from outbox.backoff import StopFlag
from outbox.publisher import BatchOutcome, OrderGuard, Publisher, Stall, relay_producer_config
from outbox.store import PendingRow, Placement

from .fakes import FakeProducer

OCCURRED = datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def row(row_id: int, key: str, *, causation_id: str = "", traceparent: str | None = None) -> PendingRow:
    envelope = Envelope(
        id=f"00000000-0000-4000-8000-{row_id:012d}",
        type="orders.RelayProbe",
        source="/orders",
        time=format_time(OCCURRED),
        data_version=2,
        correlation_id=f"story-{key}",
        causation_id=causation_id or None,
        traceparent=traceparent,
    )
    payload = f'{{"order_id": "{key}", "step": {row_id}}}'
    return PendingRow(row_id, "orders", key, payload, envelope.headers(), OCCURRED.timestamp())


def publisher(producer: FakeProducer) -> Publisher:
    return Publisher(producer, stop=StopFlag(), on_stall=lambda stall: None, flush_slice=0.01)


def test_records_carry_the_rows_topic_key_value_and_cloudevents_headers():
    producer = FakeProducer()
    rows = [row(1, "a"), row(2, "a", causation_id="cause-1", traceparent=TRACEPARENT)]

    outcome = publisher(producer).publish(rows, OrderGuard())

    assert set(outcome.placements) == {1, 2}
    first, second = producer.produced
    assert (first.topic, first.key, first.value) == (physical_topic("orders"), "a", rows[0].payload)
    assert first.headers == {
        "ce_specversion": "1.0",
        "ce_id": "00000000-0000-4000-8000-000000000001",
        "ce_source": "/orders",
        "ce_type": "orders.RelayProbe",
        "ce_time": "2026-01-02T03:04:05.600000Z",
        "content-type": "application/json",
        "ce_correlationid": "story-a",
        "ce_dataversion": "2",
    }
    assert "ce_causationid" not in first.headers  # absent for the first event of a story
    assert second.headers["ce_causationid"] == "cause-1"
    assert "ce_traceparent" not in first.headers  # a row written before trace context was kept
    assert second.headers["ce_traceparent"] == TRACEPARENT  # the CloudEvents tracing extension
    envelope = Envelope.from_headers([(name, value.encode()) for name, value in second.headers.items()])
    assert envelope.causation_id == "cause-1"


def test_every_confirmed_row_is_safe_to_mark_with_its_partition_and_offset():
    producer = FakeProducer()
    rows = [row(1, "a"), row(2, "b"), row(3, "a")]
    guard = OrderGuard()

    outcome = publisher(producer).publish(rows, guard)
    placements = guard.safe_to_mark(rows, outcome)

    assert [p.row_id for p in placements] == [1, 2, 3]
    by_id = {p.row_id: p for p in placements}
    assert by_id[1].partition == by_id[3].partition  # one key, one partition
    assert by_id[3].offset == by_id[1].offset + 1


def test_after_a_failed_delivery_later_rows_of_that_key_are_neither_produced_nor_marked():
    producer = FakeProducer(fail_keys={"a"})
    rows = [row(1, "b"), row(2, "a"), row(3, "a"), row(4, "b")]
    guard = OrderGuard()

    outcome = publisher(producer).publish(rows, guard)
    placements = guard.safe_to_mark(rows, outcome)

    # poll(0) after each produce surfaces the failure of row 2 before row 3 is produced.
    assert producer.keys_in_order() == ["b", "a", "b"]
    assert set(outcome.failures) == {2}
    assert [p.row_id for p in placements] == [1, 4]
    assert guard.holds_back(rows[1])  # later batches of this window keep key "a" back


def test_a_row_refused_by_produce_holds_back_its_key_only():
    producer = FakeProducer(refuse_keys={"big"})
    rows = [row(1, "big"), row(2, "small"), row(3, "big")]
    guard = OrderGuard()

    outcome = publisher(producer).publish(rows, guard)

    assert "MSG_SIZE_TOO_LARGE" in outcome.failures[1].error
    assert producer.keys_in_order() == ["small"]
    assert [p.row_id for p in guard.safe_to_mark(rows, outcome)] == [2]


def test_rows_confirmed_after_a_failed_row_of_their_partition_are_not_marked():
    rows = [row(1, "a"), row(2, "b")]
    producer = FakeProducer(partitions=1, fail_event_ids={rows[0].header("ce_id")})
    guard = OrderGuard()

    outcome = publisher(producer).publish(rows, guard)

    assert set(outcome.placements) == {2}  # on Kafka, but behind a gap in its partition
    assert guard.safe_to_mark(rows, outcome) == []


def test_rows_before_the_first_failure_of_their_key_are_still_marked():
    rows = [row(1, "a"), row(2, "a"), row(3, "a")]
    producer = FakeProducer(fail_event_ids={rows[1].header("ce_id")})
    guard = OrderGuard()

    outcome = publisher(producer).publish(rows, guard)

    assert producer.keys_in_order() == ["a", "a"]  # row 3 waits behind row 2
    assert [p.row_id for p in guard.safe_to_mark(rows, outcome)] == [1]


def test_a_row_confirmed_after_an_earlier_failure_of_its_key_is_not_marked():
    rows = [row(1, "a"), row(2, "a"), row(3, "a")]
    # A slow broker: every record is produced before the failure of row 2 is known.
    producer = FakeProducer(slow=True, fail_event_ids={rows[1].header("ce_id")})
    guard = OrderGuard()

    outcome = publisher(producer).publish(rows, guard)

    assert set(outcome.placements) == {1, 3}  # row 3 is on Kafka, ahead of row 2's retry
    assert [p.row_id for p in guard.safe_to_mark(rows, outcome)] == [1]


def test_a_failure_without_a_partition_still_holds_back_its_key():
    rows = [row(1, "a"), row(2, "a"), row(3, "a"), row(4, "b")]
    outcome = BatchOutcome(placements={r.id: Placement(r.id, 0, r.id) for r in (rows[0], rows[2], rows[3])})
    outcome.fail(rows[1], KafkaError(KafkaError._UNKNOWN_PARTITION, "no leader"), partition=-1)

    assert [p.row_id for p in OrderGuard().safe_to_mark(rows, outcome)] == [1, 4]


def test_a_full_producer_queue_is_drained_by_polling_and_nothing_is_lost():
    producer = FakeProducer(queue_limit=2, slow=True)
    rows = [row(number, f"k{number % 3}") for number in range(1, 8)]

    outcome = publisher(producer).publish(rows, OrderGuard())

    assert producer.buffer_errors > 0
    assert len(outcome.placements) == 7
    assert [record.key for record in producer.produced] == [r.key for r in rows]


def test_a_stalled_delivery_is_reported_with_growing_intervals_until_stopped():
    producer = FakeProducer(stalled=True, no_metadata=True)
    stop = StopFlag()
    stalls: list[Stall] = []

    def on_stall(stall: Stall) -> None:
        stalls.append(stall)
        if len(stalls) == 2:
            stop.set()

    publisher_ = Publisher(
        producer, stop=stop, on_stall=on_stall, first_stall_report=0.01, shutdown_grace=0, flush_slice=0.01
    )
    outcome = publisher_.publish([row(1, "a"), row(2, "b")], OrderGuard())

    assert [s.retry_in for s in stalls] == [0.02, 0.04]
    assert stalls[0].in_flight == 2
    assert stalls[0].topics == frozenset({"orders"})
    assert outcome.unconfirmed == 2
    assert outcome.placements == {}


def test_a_stopping_publisher_still_waits_a_while_for_the_batch_in_hand():
    producer = FakeProducer(stalled=True)
    stop = StopFlag()
    stop.set()
    publisher_ = Publisher(producer, stop=stop, on_stall=print, shutdown_grace=30, flush_slice=0.01)
    outcome = publisher_.send([row(1, "a")], OrderGuard())
    threading.Timer(0.03, lambda: setattr(producer, "stalled", False)).start()  # Kafka answers

    publisher_.confirm(outcome, {"orders"})

    assert outcome.unconfirmed == 0
    assert set(outcome.placements) == {1}


def test_the_relay_producer_never_times_out_records_and_keeps_them_gapless():
    config = relay_producer_config()
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"
    assert config["message.timeout.ms"] == 0
    assert config["enable.gapless.guarantee"] is True


@pytest.mark.parametrize("fatal", [False, True])
def test_the_outcome_tells_fatal_failures_apart(fatal):
    outcome = publisher(FakeProducer(fail_keys={"a"}, fatal=fatal)).publish([row(1, "a")], OrderGuard())
    assert outcome.fatal is fatal


class RaisingProducer(FakeProducer):
    """Raises `error` from its next poll() or flush(), as librdkafka raises a fatal error
    (e.g. no idempotent producer id without a WRITE grant) once, outside any delivery report."""

    def __init__(self, error: KafkaError) -> None:
        super().__init__()
        self.error: KafkaError | None = error

    def poll(self, timeout: float = 0) -> int:
        error, self.error = self.error, None
        if error is not None:
            raise KafkaException(error)
        return super().poll(timeout)


def test_a_fatal_error_raised_by_poll_is_an_outcome_not_a_crash():
    refused = KafkaError(KafkaError.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed", fatal=True)
    outcome = publisher(RaisingProducer(refused)).publish([row(1, "a")], OrderGuard())
    assert outcome.fatal
    assert outcome.fatal_error == "CLUSTER_AUTHORIZATION_FAILED: Cluster authorization failed"


def test_any_other_exception_out_of_poll_is_a_bug_and_propagates():
    producer = RaisingProducer(KafkaError(KafkaError._TRANSPORT, "boom"))
    with pytest.raises(KafkaException):
        publisher(producer).publish([row(1, "a")], OrderGuard())
