"""The relay's SQL: read unpublished rows in commit order, stamp the published ones, clean up.

Plain psycopg 3 on the relay's own connection (autocommit: every statement is its own
transaction), with prepared statements, because the relay runs these a few thousand rows at
a time for as long as it lives.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

import psycopg
from psycopg.rows import RowMaker

from backbone.envelope import Envelope, Headers, format_time

_COLUMNS = """
    id, topic, key, event_id::text, event_type, data_version, source, correlation_id,
    causation_id, occurred_at, payload::text, traceparent
"""

# Rows commit out of id order (a long transaction takes its id early and commits late), so
# "ids above the last one seen" would skip rows for good. Unpublished rows are selected
# instead, from `outbox_pending` (the ids of unpublished rows, kept by triggers on `outbox`,
# see migration 0003), in the order their transactions committed: a pending row is written
# by the transaction that wrote its outbox row, so its xmin commits with it. Rows committed
# before track_commit_timestamp was switched on (or frozen by VACUUM) have no commit
# timestamp; they are the oldest, so they go first.
# Only ids are read here, so one scan can order a large backlog cheaply (a window); the
# rows themselves are then read a batch at a time, by id.
PENDING_IDS_IN_COMMIT_ORDER = """
    SELECT id FROM outbox_pending
    ORDER BY pg_xact_commit_timestamp(xmin) NULLS FIRST, id
    LIMIT %s
"""
PENDING_IDS_IN_ID_ORDER = "SELECT id FROM outbox_pending ORDER BY id LIMIT %s"
# Without track_commit_timestamp, pg_xact_commit_timestamp() raises: no commit time then.
ROWS_BY_ID = f"SELECT {_COLUMNS}, NULL::timestamptz FROM outbox WHERE id = ANY(%s::bigint[])"
# With the commit time, for the publish latency metric (outbox/metrics.py).
ROWS_BY_ID_WITH_COMMIT_TIME = (
    f"SELECT {_COLUMNS}, pg_xact_commit_timestamp(xmin) FROM outbox WHERE id = ANY(%s::bigint[])"
)
# No index of `outbox` covers these three columns, and the table leaves half of every page
# free (fillfactor 50), so a mark is a HOT update: a new row version on the same page and no
# new index entry. The UPDATE trigger takes the ids off `outbox_pending`.
# The same statement copies the marked rows, without payload, to `outbox_event_log`, which
# outlives the outbox's retention (the story of an older order, `manage.py audit`): one round
# trip, and the mark and its record commit together. A row published again (reset by hand)
# keeps one record, at its latest place. The rowcount is the INSERT's: one per marked row.
MARK_PUBLISHED = """
    WITH marked AS (
        UPDATE outbox AS o
        SET published_at = %s, kafka_partition = d.kafka_partition, kafka_offset = d.kafka_offset
        FROM unnest(%s::bigint[], %s::int[], %s::bigint[]) AS d(id, kafka_partition, kafka_offset)
        WHERE o.id = d.id AND o.published_at IS NULL
        RETURNING o.id, o.event_id, o.event_type, o.topic, o.key, o.correlation_id, o.causation_id,
            o.occurred_at, o.published_at, o.kafka_partition, o.kafka_offset
    )
    INSERT INTO outbox_event_log (id, event_id, event_type, topic, key, correlation_id,
        causation_id, occurred_at, published_at, kafka_partition, kafka_offset)
    SELECT * FROM marked
    ON CONFLICT (id) DO UPDATE SET published_at = excluded.published_at,
        kafka_partition = excluded.kafka_partition, kafka_offset = excluded.kafka_offset
"""
COUNT_PENDING = "SELECT count(*) FROM outbox_pending"
# Retention walks the primary key from the oldest row (an index on published_at would make
# every mark a non-HOT update). Ids follow insertion, so the walk stops at the first row
# too new to go; unpublished rows never expire and are stepped over.
OLDEST_ROWS_AFTER = "SELECT id, published_at, occurred_at FROM outbox WHERE id > %s ORDER BY id LIMIT %s"
DELETE_PUBLISHED_BEFORE = "DELETE FROM outbox WHERE id = ANY(%s::bigint[]) AND published_at < %s"
# The event log's retention walks its primary key too (its ids are the outbox's, so they follow
# publication closely enough), stopping at the first record published after the cutoff.
OLDEST_LOG_RECORDS_AFTER = "SELECT id, published_at FROM outbox_event_log WHERE id > %s ORDER BY id LIMIT %s"
DELETE_EVENT_LOG_BEFORE = "DELETE FROM outbox_event_log WHERE id = ANY(%s::bigint[]) AND published_at < %s"


class PendingRow(NamedTuple):
    """An unpublished outbox row, as the relay reads it (the payload stays JSON text)."""

    id: int
    topic: str
    key: str
    event_id: str
    event_type: str
    data_version: int
    source: str
    correlation_id: str
    causation_id: str
    occurred_at: datetime
    payload: str
    traceparent: str | None = None  # rows written before the column existed have none
    # Selected after the columns above (ROWS_BY_ID...): when its transaction committed, if known.
    committed_at: datetime | None = None

    def headers(self) -> Headers:
        return headers_of(self)


class StoredEvent(Protocol):
    """The outbox columns a record's CloudEvents headers come from."""

    @property
    def event_id(self) -> str: ...
    @property
    def event_type(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def data_version(self) -> int: ...
    @property
    def correlation_id(self) -> str: ...
    @property
    def causation_id(self) -> str: ...
    @property
    def traceparent(self) -> str | None: ...


def headers_of(row: StoredEvent) -> Headers:
    """The CloudEvents headers of an outbox row, rebuilt from its columns."""
    return Envelope(
        id=row.event_id,
        type=row.event_type,
        source=row.source,
        time=format_time(row.occurred_at),
        data_version=row.data_version,
        correlation_id=row.correlation_id,
        causation_id=row.causation_id or None,
        traceparent=row.traceparent,
    ).headers()


@dataclass(frozen=True, slots=True)
class Placement:
    """Where Kafka stored a row's record."""

    row_id: int
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class CleanupStep:
    """One chunk of the retention walk."""

    deleted: int
    last_id: int  # the walk goes on after this id
    done: bool  # reached a row too new to delete, or the end of the table


def _pending_row_maker(cursor: Any) -> RowMaker[PendingRow]:
    return PendingRow._make


def commit_timestamps_tracked(connection: psycopg.Connection) -> bool:
    row = connection.execute("SHOW track_commit_timestamp").fetchone()
    return row is not None and row[0] == "on"


class OutboxStore:
    """The outbox table as the relay sees it, on a connection the relay owns."""

    def __init__(self, connection: psycopg.Connection, *, in_commit_order: bool = True) -> None:
        self._connection = connection
        self._pending_ids = PENDING_IDS_IN_COMMIT_ORDER if in_commit_order else PENDING_IDS_IN_ID_ORDER
        self._rows_by_id = ROWS_BY_ID_WITH_COMMIT_TIME if in_commit_order else ROWS_BY_ID
        # Marking need not wait for the WAL flush: should a crash lose a mark, the row is
        # simply published again, a duplicate consumers drop by ce_id. Only this session.
        connection.execute("SET synchronous_commit = off")
        # Timestamps then arrive in datetime.UTC, which formats for ce_time much faster.
        connection.execute("SET TIME ZONE 'UTC'")
        # Every statement here is built on an index. Right after a burst the statistics lag
        # behind and the planner would rather scan the whole (large) table; and a plain index
        # scan, unlike a bitmap scan, marks the burst's dead entries in `outbox_pending`'s
        # key so the next scans skip them. So: indexes only, for this session.
        connection.execute("SET enable_seqscan = off")
        connection.execute("SET enable_bitmapscan = off")
        connection.execute("SET max_parallel_workers_per_gather = 0")
        # Disabling scan types works by making them cost 10^10, which is far above
        # jit_above_cost: without this, PostgreSQL would JIT-compile every scan (~50 ms each,
        # on every wake-up) for a query that reads a handful of rows.
        connection.execute("SET jit = off")

    def pending_ids(self, limit: int) -> list[int]:
        """The ids of the oldest unpublished rows, in commit order."""
        cursor = self._connection.execute(self._pending_ids, (limit,), prepare=True)
        return [row[0] for row in cursor]

    def fetch_rows(self, ids: list[int]) -> list[PendingRow]:
        """The rows with these ids, in the order given."""
        with self._connection.cursor(row_factory=_pending_row_maker) as cursor:
            cursor.execute(self._rows_by_id, (ids,), prepare=True)
            by_id = {row.id: row for row in cursor}
        return [by_id[row_id] for row_id in ids if row_id in by_id]

    def mark_published(self, placements: list[Placement], *, published_at: datetime) -> int:
        if not placements:
            return 0
        ids, partitions, offsets = zip(*((p.row_id, p.partition, p.offset) for p in placements), strict=True)
        cursor = self._connection.execute(
            MARK_PUBLISHED, (published_at, list(ids), list(partitions), list(offsets)), prepare=True
        )
        return cursor.rowcount

    def count_pending(self) -> int:
        row = self._connection.execute(COUNT_PENDING).fetchone()
        return int(row[0]) if row else 0

    def delete_published_before(self, cutoff: datetime, *, chunk_size: int, after_id: int = 0) -> CleanupStep:
        """Delete the rows published before `cutoff` among the next `chunk_size` rows after
        `after_id`, oldest first."""
        page = self._connection.execute(OLDEST_ROWS_AFTER, (after_id, chunk_size), prepare=True).fetchall()
        expired: list[int] = []
        for row_id, published_at, occurred_at in page:
            if published_at is not None and published_at < cutoff:
                expired.append(row_id)
            elif (published_at or occurred_at) >= cutoff:
                # Written or published after the cutoff: so are (nearly) all rows after it.
                # Stragglers go in a later clean-up.
                return CleanupStep(self._delete(expired, cutoff), row_id, done=True)
        last_id = page[-1][0] if page else after_id
        return CleanupStep(self._delete(expired, cutoff), last_id, done=len(page) < chunk_size)

    def delete_event_log_before(self, cutoff: datetime, *, chunk_size: int, after_id: int = 0) -> CleanupStep:
        """Delete the event records published before `cutoff` among the next `chunk_size`
        records after `after_id`, oldest first."""
        page = self._connection.execute(
            OLDEST_LOG_RECORDS_AFTER, (after_id, chunk_size), prepare=True
        ).fetchall()
        expired: list[int] = []
        for record_id, published_at in page:
            if published_at >= cutoff:
                return CleanupStep(self._delete_records(expired, cutoff), record_id, done=True)
            expired.append(record_id)
        last_id = page[-1][0] if page else after_id
        return CleanupStep(self._delete_records(expired, cutoff), last_id, done=len(page) < chunk_size)

    def _delete_records(self, ids: list[int], cutoff: datetime) -> int:
        if not ids:
            return 0
        return self._connection.execute(DELETE_EVENT_LOG_BEFORE, (ids, cutoff), prepare=True).rowcount

    def _delete(self, ids: list[int], cutoff: datetime) -> int:
        if not ids:
            return 0
        return self._connection.execute(DELETE_PUBLISHED_BEFORE, (ids, cutoff), prepare=True).rowcount
