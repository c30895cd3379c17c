"""The relay's SQL against the real PostgreSQL: the record it prepares for each outbox row."""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from django.db import connection

from outbox.models import OutboxRecord
from outbox.relay import database_connector
from outbox.store import OutboxStore, headers_of

pytestmark = pytest.mark.django_db(transaction=True)

INSERT = """
    INSERT INTO outbox (event_id, topic, key, event_type, data_version, source, correlation_id,
                        causation_id, occurred_at, payload, traceparent, tracestate)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id
"""
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@dataclass(frozen=True)
class Stored:
    """The columns emit() writes (a `StoredEvent`)."""

    event_id: str
    event_type: str
    source: str
    occurred_at: datetime
    data_version: int
    correlation_id: str
    causation_id: str
    traceparent: str | None
    tracestate: str | None = None
    key: str = "order-1"
    payload: str = '{"order_id": "order-1", "note": "caf\u00e9"}'


def stored(
    occurred_at: datetime,
    *,
    causation_id: str = "",
    traceparent: str | None = None,
    tracestate: str | None = None,
) -> Stored:
    return Stored(
        event_id=str(uuid.uuid4()),
        event_type="orders.RelayProbe",
        source="/orders",
        occurred_at=occurred_at,
        data_version=12,
        correlation_id=f"story-{uuid.uuid4()}",
        causation_id=causation_id,
        traceparent=traceparent,
        tracestate=tracestate,
    )


# Every shape a row's headers take: with and without a fraction of a second (RFC 3339 leaves
# it out then), a time written in another zone, the optional headers present, empty or absent.
ROWS = [
    stored(
        datetime(2026, 3, 4, 5, 6, 7, 890_123, tzinfo=UTC), causation_id="cause-1", traceparent=TRACEPARENT
    ),
    stored(datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)),
    stored(datetime(2026, 3, 4, 5, 6, 7, 1, tzinfo=UTC), traceparent=""),
    stored(
        datetime(2026, 3, 4, 5, 6, 8, tzinfo=UTC), traceparent=TRACEPARENT, tracestate="congo=t61rcWkgMzE"
    ),
    stored(datetime(2026, 12, 31, 23, 30, 0, 500_000, tzinfo=timezone(timedelta(hours=-5)))),
]


@pytest.fixture
def relay_connection() -> Iterator[psycopg.Connection]:
    with database_connector(connection.settings_dict)() as relay:
        yield relay


def insert(relay: psycopg.Connection, rows: list[Stored]) -> list[int]:
    ids = []
    for row in rows:
        values = (row.event_id, "orders", row.key, row.event_type, row.data_version, row.source)
        values += (row.correlation_id, row.causation_id, row.occurred_at, row.payload, row.traceparent)
        values += (row.tracestate,)
        ids.append(relay.execute(INSERT, values).fetchone()[0])  # type: ignore[index]
    return ids


def as_bytes(headers: list[tuple[str, str | bytes | None]]) -> list[tuple[str, bytes]]:
    """Header values as they go on the wire (librdkafka encodes text as UTF-8)."""
    return [(name, value.encode() if isinstance(value, str) else value or b"") for name, value in headers]


@pytest.mark.parametrize("in_commit_order", [True, False])
def test_the_headers_prepared_in_sql_are_byte_for_byte_those_headers_of_builds(
    relay_connection, in_commit_order
):
    ids = insert(relay_connection, ROWS)

    fetched = OutboxStore(relay_connection, in_commit_order=in_commit_order).fetch_rows(ids)

    assert [row.id for row in fetched] == ids
    for row, written in zip(fetched, ROWS, strict=True):
        assert as_bytes(row.headers) == as_bytes(headers_of(written))
        assert (row.topic, row.key) == ("orders", written.key)
        assert row.payload == written.payload  # as written, not JSON rebuilt by PostgreSQL


def test_rows_come_in_the_order_asked_for_and_rows_gone_meanwhile_are_left_out(relay_connection):
    ids = insert(relay_connection, [stored(datetime.now(UTC)) for _ in range(4)])
    relay_connection.execute("DELETE FROM outbox WHERE id = %s", (ids[1],))

    fetched = OutboxStore(relay_connection).fetch_rows([ids[3], ids[1], ids[0], ids[2]])

    assert [row.id for row in fetched] == [ids[3], ids[0], ids[2]]


def test_the_commit_time_is_read_for_the_latency_metric_or_else_the_time_written(relay_connection):
    written = datetime.now(UTC) - timedelta(hours=1)
    (row_id,) = insert(relay_connection, [stored(written)])

    (tracked,) = OutboxStore(relay_connection, in_commit_order=True).fetch_rows([row_id])
    (untracked,) = OutboxStore(relay_connection, in_commit_order=False).fetch_rows([row_id])

    assert tracked.committed_at == pytest.approx(datetime.now(UTC).timestamp(), abs=60)
    assert untracked.committed_at == pytest.approx(written.timestamp())


def test_the_application_still_reads_the_payload_as_json(relay_connection):
    (row_id,) = insert(relay_connection, [stored(datetime.now(UTC))])

    assert OutboxRecord.objects.get(id=row_id).payload == {"order_id": "order-1", "note": "caf\u00e9"}
    notes = OutboxRecord.objects.filter(id=row_id).values_list("payload__note", flat=True)
    assert list(notes) == ["caf\u00e9"]


@pytest.mark.parametrize("in_commit_order", [True, False])
@pytest.mark.parametrize("shard", [(0, 1), (0, 2), (1, 2)])
def test_a_wake_up_reads_the_same_rows_in_one_statement_as_scan_and_fetch(
    relay_connection, in_commit_order, shard
):
    """`pending_rows` is `pending_ids` then `fetch_rows`, in one statement: the same rows in
    the same (commit) order, within the limit, for every shard."""
    connect = database_connector(connection.settings_dict)
    with connect() as early, connect() as late:
        early.autocommit = False
        (first,) = insert(early, [stored(datetime.now(UTC))])  # takes its id first, commits last
        insert(late, [replace(stored(datetime.now(UTC)), key=f"order-{n}") for n in range(6)])
        early.commit()
    store = OutboxStore(relay_connection, in_commit_order=in_commit_order, shard=shard)

    for limit in (5, 10):  # part of what waits, then all of it (the early row last, in commit order)
        expected = store.fetch_rows(store.pending_ids(limit))
        together = store.pending_rows(limit)
        assert [row.id for row in together] == [row.id for row in expected]
        assert together == expected
    if shard == (0, 1):
        assert [row.id for row in together][-1 if in_commit_order else 0] == first
