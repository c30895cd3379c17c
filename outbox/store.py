"""The relay's SQL: read unpublished rows in commit order, stamp the published ones, clean up.

Plain psycopg 3 on the relay's own connection (autocommit: every statement is its own
transaction), with prepared statements, because the relay runs these a few thousand rows at
a time for as long as it lives.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

import psycopg
from psycopg.rows import RowMaker

from backbone.envelope import CONTENT_TYPE, SPEC_VERSION, Envelope, Headers, format_time

# The record as Kafka gets it, prepared by PostgreSQL: ce_time already in RFC 3339 UTC (whole
# seconds without a fraction, as `format_time` writes them),
# ce_dataversion as text, the optional headers NULL when absent; and, for the publish latency
# metric, the epoch seconds of the row's commit. The relay's Python then only assembles the
# header list (see `_pending_row`): no datetime, no per-row formatting or encoding.
_RECORD_COLUMNS = """
    o.id, o.topic, o.key, o.payload::text, extract(epoch FROM {committed})::float8,
    o.event_id::text, o.source, o.event_type,
    to_char(o.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || CASE WHEN extract(microseconds FROM o.occurred_at)::bigint %% 1000000 = 0 THEN ''
                ELSE to_char(o.occurred_at AT TIME ZONE 'UTC', '.US') END || 'Z',
    o.correlation_id, o.data_version::text, nullif(o.causation_id, ''), nullif(o.traceparent, ''),
    nullif(o.tracestate, '')
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
# One shard's share (see shards.py): the same scans, filtered by the hash of the row's key
# that the triggers store with each id. A key always falls in one shard.
_OF_SHARD = "WHERE key_hash %% %s = %s"
PENDING_IDS_OF_SHARD_IN_COMMIT_ORDER = f"""
    SELECT id FROM outbox_pending {_OF_SHARD}
    ORDER BY pg_xact_commit_timestamp(xmin) NULLS FIRST, id
    LIMIT %s
"""
PENDING_IDS_OF_SHARD_IN_ID_ORDER = f"SELECT id FROM outbox_pending {_OF_SHARD} ORDER BY id LIMIT %s"
# The rows of a batch in the order of the ids given (PostgreSQL sorts them back, not Python);
# a row deleted meanwhile is left out. Without track_commit_timestamp,
# pg_xact_commit_timestamp() raises: the commit time is then the row's occurred_at.
_ROWS_BY_ID = """
    SELECT {columns}
    FROM unnest(%s::bigint[]) WITH ORDINALITY AS wanted(id, position)
    JOIN outbox AS o ON o.id = wanted.id
    ORDER BY wanted.position
"""
ROWS_BY_ID = _ROWS_BY_ID.format(columns=_RECORD_COLUMNS.format(committed="o.occurred_at"))
ROWS_BY_ID_WITH_COMMIT_TIME = _ROWS_BY_ID.format(
    columns=_RECORD_COLUMNS.format(committed="coalesce(pg_xact_commit_timestamp(o.xmin), o.occurred_at)")
)


# A wake-up's few rows in one statement: the scan's ids, oldest first, and their rows (the scan
# inside ARRAY() keeps its order, WITH ORDINALITY keeps it through the join). Two statements
# were two commits per wake-up; a backlog still goes by windows of ids (see term.py).
def _pending_rows(pending_ids: str, columns: str) -> str:
    return _ROWS_BY_ID.replace("%s::bigint[]", f"ARRAY({pending_ids.strip()})").format(columns=columns)


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
        SET published_at = d.published_at, kafka_partition = d.kafka_partition, kafka_offset = d.kafka_offset
        FROM unnest(%s::timestamptz[], %s::bigint[], %s::int[], %s::bigint[])
            AS d(published_at, id, kafka_partition, kafka_offset)
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
    """An unpublished outbox row as the relay sends it: the record, with its headers ready."""

    id: int
    topic: str
    key: str
    payload: str  # the JSON text
    headers: Headers  # the CloudEvents headers (values as text: librdkafka encodes them)
    # When its transaction committed (epoch seconds; occurred_at when not tracked), for the
    # publish latency metric.
    committed_at: float

    def header(self, name: str) -> str | None:
        """One header's value as text (tracing and log lines; not on the hot path)."""
        for header, value in self.headers:
            if header == name:
                return value.decode() if isinstance(value, bytes) else value
        return None


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
    @property
    def tracestate(self) -> str | None: ...


def headers_of(row: StoredEvent) -> Headers:
    """The CloudEvents headers of an outbox row, rebuilt from its columns in Python: what
    `ROWS_BY_ID` prepares in SQL for the relay (a test holds the two to the same bytes)."""
    return Envelope(
        id=row.event_id,
        type=row.event_type,
        source=row.source,
        time=format_time(row.occurred_at),
        data_version=row.data_version,
        correlation_id=row.correlation_id,
        causation_id=row.causation_id or None,
        traceparent=row.traceparent,
        tracestate=row.tracestate,
    ).headers()


# The headers every record carries with the same value, built once.
_SPEC_VERSION = ("ce_specversion", SPEC_VERSION.encode())
_CONTENT_TYPE = ("content-type", CONTENT_TYPE.encode())


def _pending_row(values: Sequence[Any]) -> PendingRow:
    """A row of `ROWS_BY_ID` as the record it becomes: the one piece of Python per row read."""
    (row_id, topic, key, payload, committed_at, event_id, source, event_type, time, correlation_id,
     data_version, causation_id, traceparent, tracestate) = values  # fmt: skip
    headers: Headers = [
        _SPEC_VERSION,
        ("ce_id", event_id),
        ("ce_source", source),
        ("ce_type", event_type),
        ("ce_time", time),
        _CONTENT_TYPE,
        ("ce_correlationid", correlation_id),
        ("ce_dataversion", data_version),
    ]
    if causation_id is not None:
        headers.append(("ce_causationid", causation_id))
    if traceparent is not None:
        # The CloudEvents extension and the plain W3C header OpenTelemetry's Kafka tools read.
        headers += [("ce_traceparent", traceparent), ("traceparent", traceparent)]
        if tracestate is not None:
            headers += [("ce_tracestate", tracestate), ("tracestate", tracestate)]
    return PendingRow(row_id, topic, key, payload, headers, committed_at)


class Placement(NamedTuple):
    """Where Kafka stored a row's record (a tuple: one is made per delivery report)."""

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
    return _pending_row


def commit_timestamps_tracked(connection: psycopg.Connection) -> bool:
    row = connection.execute("SHOW track_commit_timestamp").fetchone()
    return row is not None and row[0] == "on"


class OutboxStore:
    """The outbox table as the relay sees it, on a connection the relay owns."""

    def __init__(
        self, connection: psycopg.Connection, *, in_commit_order: bool = True, shard: tuple[int, int] = (0, 1)
    ) -> None:
        self._connection = connection
        number, count = shard  # shard `number` of `count`; one shard reads exactly as before
        self._shard_params: tuple[int, ...] = () if count == 1 else (count, number)
        if count == 1:
            self._pending_ids = PENDING_IDS_IN_COMMIT_ORDER if in_commit_order else PENDING_IDS_IN_ID_ORDER
        else:
            self._pending_ids = (
                PENDING_IDS_OF_SHARD_IN_COMMIT_ORDER if in_commit_order else PENDING_IDS_OF_SHARD_IN_ID_ORDER
            )
        self._rows_by_id = ROWS_BY_ID_WITH_COMMIT_TIME if in_commit_order else ROWS_BY_ID
        committed = (
            "coalesce(pg_xact_commit_timestamp(o.xmin), o.occurred_at)"
            if in_commit_order
            else "o.occurred_at"
        )
        self._pending_rows = _pending_rows(self._pending_ids, _RECORD_COLUMNS.format(committed=committed))
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
        cursor = self._connection.execute(self._pending_ids, (*self._shard_params, limit), prepare=True)
        return [row[0] for row in cursor]

    def pending_rows(self, limit: int) -> list[PendingRow]:
        """The oldest unpublished rows themselves, in commit order: `pending_ids` and
        `fetch_rows` in one statement, for a wake-up that finds a batch or less."""
        with self._connection.cursor(row_factory=_pending_row_maker, binary=True) as cursor:
            cursor.execute(self._pending_rows, (*self._shard_params, limit), prepare=True)
            return cursor.fetchall()

    def fetch_rows(self, ids: list[int]) -> list[PendingRow]:
        """The rows with these ids, in the order given (those deleted meanwhile left out)."""
        # Binary results: numbers and the commit time arrive without parsing text.
        with self._connection.cursor(row_factory=_pending_row_maker, binary=True) as cursor:
            cursor.execute(self._rows_by_id, (ids,), prepare=True)
            return cursor.fetchall()

    def mark_published(
        self, placements: list[Placement], *, published_at: datetime | Sequence[datetime]
    ) -> int:
        """Stamp the rows published: at one time, or each at its own (marks held together)."""
        if not placements:
            return 0
        times = [published_at] * len(placements) if isinstance(published_at, datetime) else list(published_at)
        ids, partitions, offsets = zip(*((p.row_id, p.partition, p.offset) for p in placements), strict=True)
        cursor = self._connection.execute(
            MARK_PUBLISHED, (times, list(ids), list(partitions), list(offsets)), prepare=True
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
