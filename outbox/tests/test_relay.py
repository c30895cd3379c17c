"""The relay on the real PostgreSQL: what it publishes, in which order, with which headers.

One test publishes to the real Kafka (what lands there, at the offsets the rows keep); the
others run the relay's logic on an in-memory broker (backbone.testing.memory_kafka: the same
producer port). The relay process on Kafka: test_relay_process.py, test_relay_shards.py."""

import json
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from django.db import connection, transaction
from django.utils import timezone
from opentelemetry.trace import SpanKind

from backbone import tracing
from backbone.correlation import correlation_scope
from backbone.envelope import Envelope, format_time
from backbone.testing import read_topic
from backbone.testing.memory_kafka import MemoryBroker
from backbone.testing.spans import spans_in_memory
from outbox.emit import emit
from outbox.models import OutboxRecord

from .conftest import emit_steps, publish_once

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broker() -> MemoryBroker:
    return MemoryBroker()


def publish_in_memory(broker: MemoryBroker, **options: Any) -> None:
    """One pass of the real relay, its producer on `broker`."""
    publish_once(producer_factory=broker.producer, **options)


@pytest.mark.usefixtures("kafka_topics")
def test_a_row_becomes_a_record_with_its_key_json_and_cloudevents_headers(probe):
    key = str(uuid.uuid4())
    with correlation_scope("story-1", causation_id="cause-1"), transaction.atomic():
        envelope = emit(probe(order_id=key, step=1))

    publish_once()

    (record,) = read_topic("orders", keys={key}, at_least=1)
    row = OutboxRecord.objects.get(key=key)
    assert record.topic == "orders"  # read from the namespace's topic, named without the namespace
    assert json.loads(record.value) == {"order_id": key, "step": 1}
    assert Envelope.from_headers([(k, v.encode()) for k, v in record.headers.items()]) == envelope
    assert record.headers["ce_time"] == format_time(row.occurred_at)
    assert (row.kafka_partition, row.kafka_offset) == (record.partition, record.offset)
    assert row.published_at is not None


def test_the_first_event_of_a_story_has_no_causation_header(probe, broker: MemoryBroker):
    key = str(uuid.uuid4())
    emit_steps(probe, key, [1])

    publish_in_memory(broker)

    (record,) = broker.read("orders", keys={key})
    assert "ce_causationid" not in record.headers
    assert record.headers["ce_correlationid"]


def test_a_rolled_back_transaction_publishes_nothing(probe, broker: MemoryBroker):
    rolled_back, committed = str(uuid.uuid4()), str(uuid.uuid4())

    def change_that_fails() -> None:
        with transaction.atomic():
            emit(probe(order_id=rolled_back, step=1))
            raise RuntimeError("the change fails, so its event must vanish with it")

    with pytest.raises(RuntimeError):
        change_that_fails()
    emit_steps(probe, committed, [1])  # proves the relay ran and published what did commit

    publish_in_memory(broker)

    records = broker.read("orders", keys={rolled_back, committed})
    assert [record.key for record in records] == [committed]
    assert not OutboxRecord.objects.filter(key=rolled_back).exists()


def test_rows_committed_out_of_id_order_are_published_in_commit_order(broker: MemoryBroker):
    """Transaction 1 inserts first (lower id) but commits last: its row must follow."""
    key = str(uuid.uuid4())
    first, second = connect(), connect()
    try:
        first_id = insert_row(first, key, step=1)
        second_id = insert_row(second, key, step=2)
        assert first_id < second_id
        second.commit()
        first.commit()
    finally:
        first.close()
        second.close()

    publish_in_memory(broker)

    records = broker.read("orders", keys={key})
    assert [json.loads(record.value)["step"] for record in records] == [2, 1]
    rows = {row.id: row for row in OutboxRecord.objects.filter(key=key)}
    assert rows[second_id].kafka_offset < rows[first_id].kafka_offset


def test_a_large_backlog_is_published_completely_and_in_order_per_aggregate(probe, broker: MemoryBroker):
    keys = [str(uuid.uuid4()) for _ in range(5)]
    with transaction.atomic():
        for step in range(60):
            for key in keys:
                emit(probe(order_id=key, step=step))

    # Small batches and windows, so the backlog takes several of each.
    publish_in_memory(broker, batch_size=7, window_size=50)

    records = broker.read("orders", keys=set(keys))
    assert len(records) == 300
    for key in keys:
        assert [json.loads(r.value)["step"] for r in records if r.key == key] == list(range(60))
    assert not OutboxRecord.objects.filter(key__in=keys, published_at__isnull=True).exists()


def test_retention_deletes_only_rows_published_before_the_cutoff(probe, broker: MemoryBroker):
    key = str(uuid.uuid4())
    emit_steps(probe, key, range(6))
    rows = list(OutboxRecord.objects.filter(key=key).order_by("id"))
    now = timezone.now()
    ages = {rows[0].id: 100, rows[1].id: 80, rows[2].id: 73, rows[3].id: 1}  # hours since published
    for row_id, hours in ages.items():
        OutboxRecord.objects.filter(id=row_id).update(
            published_at=now - timedelta(hours=hours), kafka_partition=0, kafka_offset=0
        )
    OutboxRecord.objects.filter(id=rows[4].id).update(occurred_at=now - timedelta(days=30))  # unpublished

    # Chunks of 2 rows, so the three old rows take two chunks.
    publish_in_memory(broker, retention=timedelta(hours=72), cleanup_chunk=2)

    remaining = set(OutboxRecord.objects.filter(key=key).values_list("id", flat=True))
    assert remaining == {rows[3].id, rows[4].id, rows[5].id}


def test_retention_follows_the_injected_clock(probe, broker: MemoryBroker):
    key = str(uuid.uuid4())
    emit_steps(probe, key, range(2))
    publish_in_memory(broker)
    assert OutboxRecord.objects.filter(key=key, published_at__isnull=False).count() == 2

    publish_in_memory(
        broker, clock=lambda: timezone.now() + timedelta(hours=73), retention=timedelta(hours=72)
    )

    assert not OutboxRecord.objects.filter(key=key).exists()


# --- helpers ---------------------------------------------------------------------------------


def connect() -> psycopg.Connection:
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], password=db["PASSWORD"], dbname=db["NAME"]
    )


def insert_row(conn: psycopg.Connection, key: str, *, step: int) -> int:
    """Insert an outbox row as emit() does, in `conn`'s open transaction; returns its id."""
    row = conn.execute(
        """
        INSERT INTO outbox (event_id, topic, key, event_type, data_version, source,
                            correlation_id, causation_id, occurred_at, payload)
        VALUES (%s, 'orders', %s, 'orders.RelayProbe', 1, '/orders', %s, '', now(), %s::jsonb)
        RETURNING id
        """,
        (uuid.uuid4(), key, key, json.dumps({"order_id": key, "step": step})),
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_the_trace_context_goes_as_the_plain_w3c_header_too_in_a_send_span(probe, broker: MemoryBroker):
    """OpenTelemetry's Kafka instrumentations read `traceparent`, not CloudEvents' extension."""
    key = str(uuid.uuid4())
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with tracing.continued(parent), transaction.atomic():
        emit(probe(order_id=key, step=1))

    with spans_in_memory() as spans:
        publish_in_memory(broker)

    (record,) = broker.read("orders", keys={key})
    assert record.headers["traceparent"] == record.headers["ce_traceparent"] == parent
    (span,) = [s for s in spans.get_finished_spans() if s.name == "send orders"]
    assert span.kind is SpanKind.PRODUCER
    assert span.parent is not None
    assert f"{span.parent.span_id:016x}" == parent[36:52]
    attributes = dict(span.attributes or {})
    assert {name: attributes.get(name) for name in SEND_ATTRIBUTES} == {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": "orders",
        "messaging.kafka.message.key": key,
        "messaging.destination.partition.id": str(record.partition),
        "messaging.kafka.offset": record.offset,
        "messaging.message.id": record.headers["ce_id"],
    }


def test_the_vendors_tracestate_travels_with_its_traceparent(probe, broker: MemoryBroker):
    """A client's tracestate (here two vendors' entries) reaches Kafka unchanged, both as the
    plain W3C header and as CloudEvents' extension attribute."""
    key = str(uuid.uuid4())
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    state = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    with tracing.continued(parent, state), transaction.atomic():
        emit(probe(order_id=key, step=1))
    with transaction.atomic():  # a new trace has no vendor state to pass on
        emit(probe(order_id=key, step=2))

    publish_in_memory(broker)

    first, second = broker.read("orders", keys={key})
    assert first.headers["tracestate"] == first.headers["ce_tracestate"] == state
    assert "tracestate" not in second.headers
    assert "ce_tracestate" not in second.headers


SEND_ATTRIBUTES = (
    "messaging.system",
    "messaging.operation.type",
    "messaging.operation.name",
    "messaging.destination.name",
    "messaging.kafka.message.key",
    "messaging.destination.partition.id",
    "messaging.kafka.offset",
    "messaging.message.id",
)
