"""One leader term: publish the outbox window by window, sleep until the next commit, tidy up."""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from confluent_kafka import KafkaException

from backbone.failpoints import failpoint
from backbone.heartbeat import Heartbeat
from backbone.kafka import physical_topic

from .backoff import Backoff, StopFlag
from .leader import LeaderLock, LeadershipLost
from .listener import OutboxListener
from .marker import BackgroundMarker, HeldMarks
from .metrics import count_published
from .options import Clock, ProducerFactory, RelayOptions
from .publisher import DeliveryFailure, OrderGuard, Publisher, Stall
from .store import CleanupStep, OutboxStore, PendingRow

log = logging.getLogger("outbox.relay")  # one logger for every line the relay writes

# OutboxStore.delete_published_before or delete_event_log_before: one chunk past a cutoff.
ChunkDeleter = Callable[..., CleanupStep]

# A metadata request answers in milliseconds when Kafka is up; while it is down, it takes
# this long to fail, on top of the back-off.
KAFKA_PROBE_TIMEOUT = 2.0
# The longest an idle leader leaves its lock session without a statement (stalls.py).
LOCK_TOUCH_INTERVAL = 5.0


@dataclass(frozen=True)
class WindowResult:
    rows: int
    marked: int
    failures: int
    first_failure: DeliveryFailure | None

    @property
    def complete(self) -> bool:
        return self.marked == self.rows


class LeaderTerm:
    """One stretch of leadership: publish, sleep until the next commit, tidy up."""

    def __init__(
        self,
        *,
        store: OutboxStore,
        marker: BackgroundMarker,
        listener: OutboxListener,
        lock: LeaderLock,
        producer_factory: ProducerFactory,
        clock: Clock,
        stop: StopFlag,
        options: RelayOptions,
        heartbeat: Heartbeat | None = None,
        cleans_up: bool = True,
    ) -> None:
        self._store = store
        # With shards, only shard 0's leader deletes old rows: retention is per database.
        self._cleans_up = cleans_up
        self._heartbeat = heartbeat
        self._marker = marker
        self._held = HeldMarks(options.mark_hold)
        self._listener = listener
        self._lock = lock
        self._producer_factory = producer_factory
        self._clock = clock
        self._stop = stop
        self._options = options
        self._producer = producer_factory()
        self._publisher = self._new_publisher()
        self.published = 0
        self._lost = False  # the lock went: another relay may be publishing already
        self._published_since_status = 0
        self._last_status = time.monotonic()
        self._last_cleanup = time.monotonic()

    def run(self, *, once: bool) -> None:
        try:
            self._run(once=once)
        except LeadershipLost:
            self._lost = True
            raise

    def _run(self, *, once: bool) -> None:
        if self._cleans_up:
            self.clean_up()
        if once and not self._store.count_pending():
            return  # nothing to publish: no need to wait for Kafka
        self._wait_for_kafka()
        while not self._stop.is_set():
            self._listener.drain()  # before reading, so no commit slips between read and wait
            self.publish_pending()
            if once:
                return
            self._housekeeping()
            self._beat()
            self._sleep()

    def _sleep(self) -> None:
        """Until the next commit or poll. Meanwhile the lock session runs a statement every
        LOCK_TOUCH_INTERVAL, so a long poll interval never looks like a stalled leader."""
        deadline = time.monotonic() + self._options.poll_interval
        while (left := deadline - time.monotonic()) > 0 and not self._stop.is_set():
            self._write_held_marks_when_due()
            due = self._held.due_in()
            if self._listener.wait(min(left, LOCK_TOUCH_INTERVAL, left if due is None else due)):
                self._linger()
                return
            self._lock.verify()

    def _linger(self) -> None:
        """Woken by a commit: wait `linger` seconds for the commits right behind it.

        At 20 orders/s the outbox gets a commit every few milliseconds (each hop of an order's
        chain is one), and each wake-up costs a scan, a produce and a mark: two commits and the
        relay's work per row. A few milliseconds here let one wake-up serve several, and the
        consumers then fetch their records together too (fewer, larger batches)."""
        if self._options.linger > 0:
            self._stop.wait(self._options.linger)

    # --- publishing ------------------------------------------------------------------------

    def publish_pending(self) -> None:
        """Publish window after window until nothing committed is left unpublished."""
        failures = Backoff(cap=self._options.max_backoff)
        while not self._stop.is_set():
            self._lock.verify()
            self._write_held_marks_when_due()
            self._marker.wait()  # the scan must not see rows whose marks are still on the way
            # A wake-up finds a few rows: read them with the scan, one statement (one commit),
            # leaving out the rows whose marks are held (published already), and hold their
            # marks too. A full batch may be a backlog: then windows of ids, ordered by one
            # scan each, marked at once, as the held marks are first.
            limit = self._options.batch_size + len(self._held)
            scanned = self._store.pending_rows(limit)
            rows = [row for row in scanned if not self._held.is_held(row.id)]
            if not rows:
                return
            if len(scanned) < limit:
                ids = [row.id for row in rows]
                result = self._publish_window(ids, first=rows, hold=True)
            else:
                self._held.hand_to(self._marker)
                self._marker.wait()
                ids = self._store.pending_ids(self._options.window_size)
                if not ids:
                    return
                result = self._publish_window(ids)
            if not result.complete and not self._stop.is_set():
                delay = failures.next_delay()
                self._report_refused(result, delay)
                self._stop.wait(delay)
                continue
            failures.reset()
            if len(ids) < self._options.window_size:
                return

    def _publish_window(
        self, ids: list[int], *, first: list[PendingRow] | None = None, hold: bool = False
    ) -> WindowResult:
        """Publish the rows of one scan, a batch at a time, reading the next batch while
        Kafka confirms the current one (`first`: the first batch's rows, already read;
        `hold`: their marks wait for the next wake-ups', see marker.HeldMarks)."""
        size = self._options.batch_size
        batches = [ids[start : start + size] for start in range(0, len(ids), size)]
        guard = OrderGuard()
        total = marked = failures = 0
        first_failure: DeliveryFailure | None = None
        rows = first if first is not None else self._store.fetch_rows(batches[0])
        for number in range(len(batches)):
            # Before every batch, not only every window: a leader frozen mid-window whose
            # session a standby ended must not send the rest of the window when it wakes.
            if number:
                self._lock.verify()
            outcome = self._publisher.send(rows, guard)
            upcoming = self._store.fetch_rows(batches[number + 1]) if number + 1 < len(batches) else []
            self._publisher.confirm(outcome, {row.topic for row in rows})
            # The crash window that matters: on Kafka, not yet marked. A restart republishes.
            failpoint("relay.after-delivery")
            placements = guard.safe_to_mark(rows, outcome)
            delivered = self._clock()
            if hold:
                self._held.add(placements, published_at=delivered)
            else:
                self._marker.submit(placements, published_at=delivered)
            count_published(rows, placements, delivered)
            self._count(len(placements))
            total, marked, failures = (
                total + len(rows),
                marked + len(placements),
                failures + len(outcome.failures),
            )
            first_failure = first_failure or next(iter(outcome.failures.values()), None)
            if outcome.fatal:
                self._replace_producer(outcome.fatal_error)
            if self._stop.is_set():
                break
            rows = upcoming
        return WindowResult(rows=total, marked=marked, failures=failures, first_failure=first_failure)

    def _write_held_marks_when_due(self) -> None:
        if len(self._held) >= self._options.batch_size or self._held.due_in() == 0:
            self._held.hand_to(self._marker)

    def _count(self, published: int) -> None:
        self.published += published
        self._published_since_status += published

    def _report_refused(self, result: WindowResult, delay: float) -> None:
        first = result.first_failure
        detail = f", first: topic {first.topic} row {first.row_id}: {first.error}" if first else ""
        log.warning(
            "Kafka refused %d rows%s; %d of %d rows stay unpublished (later rows of the same "
            "aggregates or partitions wait for them); retrying in %.1fs",
            result.failures,
            detail,
            result.rows - result.marked,
            result.rows,
            delay,
        )

    # --- Kafka availability ----------------------------------------------------------------

    def _wait_for_kafka(self) -> None:
        """Start even while Kafka is down: rows wait in the outbox until it answers."""
        backoff = Backoff(cap=self._options.max_backoff)
        while not self._stop.is_set():
            self._lock.verify()
            try:
                self._producer.list_topics(timeout=KAFKA_PROBE_TIMEOUT)
                return
            except KafkaException:
                self._beat(kafka="unreachable")
                delay = backoff.next_delay()
                self._log_unavailable(f"Kafka unavailable at {self._options.kafka_address}", delay)
                self._stop.wait(delay)

    def _on_stall(self, stall: Stall) -> None:
        """Called while a batch waits for Kafka; the records stay queued in the producer."""
        self._lock.verify()
        reason = self._diagnose(stall)
        self._beat(kafka=reason)
        self._log_unavailable(reason, stall.retry_in)

    def _diagnose(self, stall: Stall) -> str:
        address = self._options.kafka_address
        try:
            metadata = self._producer.list_topics(timeout=KAFKA_PROBE_TIMEOUT)
        except KafkaException:
            return f"Kafka unavailable at {address}"
        missing = sorted(name for name in map(physical_topic, stall.topics) if name not in metadata.topics)
        if missing:
            return f"Kafka at {address} has no topic {', '.join(missing)} (run `manage.py topics`)"
        return f"Kafka at {address} has not confirmed {stall.in_flight} records yet"

    def _log_unavailable(self, reason: str, retry_in: float) -> None:
        log.warning("%s; %d rows waiting; retrying in %.1fs", reason, self._store.count_pending(), retry_in)

    def _new_publisher(self) -> Publisher:
        return Publisher(
            self._producer,
            stop=self._stop,
            on_stall=self._on_stall,
            max_backoff=self._options.max_backoff,
            shutdown_grace=self._options.shutdown_grace,
        )

    def _replace_producer(self, reason: str | None) -> None:
        # A fatal error (e.g. the gap-less guarantee tripped, or no producer id for want of a
        # WRITE grant) leaves the producer unusable.
        why = f" ({reason})" if reason else ""
        log.warning("the Kafka producer hit a fatal error%s; starting a new one", why)
        self._producer = self._producer_factory()
        self._publisher = self._new_publisher()

    # --- housekeeping ----------------------------------------------------------------------

    def _beat(self, **facts: str) -> None:
        """Refresh the leader's heartbeat row (throttled), with what it published this term."""
        if self._heartbeat is not None:
            self._heartbeat.beat(state="leader", count=self.published, facts=facts)

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._last_status >= self._options.status_interval:
            self._log_status(now)
        if self._cleans_up and now - self._last_cleanup >= self._options.cleanup_interval:
            self.clean_up()

    def _log_status(self, now: float) -> None:
        elapsed = now - self._last_status
        log.info(
            "relay status: published %d rows in the last %.0fs (%.1f/s), %d this term; %d waiting",
            self._published_since_status,
            elapsed,
            self._published_since_status / elapsed if elapsed > 0 else 0.0,
            self.published,
            self._store.count_pending(),
        )
        self._published_since_status = 0
        self._last_status = now

    def clean_up(self) -> int:
        """Delete rows published longer ago than the retention, then event records past theirs."""
        self._last_cleanup = time.monotonic()
        deleted = self._delete_in_chunks(
            self._store.delete_published_before, self._options.retention, "outbox rows"
        )
        self._delete_in_chunks(
            self._store.delete_event_log_before, self._options.event_log_retention, "event log records"
        )
        return deleted

    def _delete_in_chunks(self, delete: ChunkDeleter, retention: timedelta, what: str) -> int:
        """Walk the primary key a chunk at a time, re-checking leadership before each one."""
        cutoff = self._clock() - retention
        deleted = last_id = 0
        while not self._stop.is_set():
            self._lock.verify()
            step = delete(cutoff, chunk_size=self._options.cleanup_chunk, after_id=last_id)
            deleted, last_id = deleted + step.deleted, step.last_id
            if step.done:
                break
        if deleted:
            log.info("deleted %d %s published before %s", deleted, what, cutoff.isoformat())
        return deleted

    def close(self) -> None:
        """Write the held marks and wait for the last ones; say what Kafka has not confirmed
        (it is published again)."""
        self._held.hand_to(self._marker)
        self._marker.wait()
        if self._lost:
            # The next leader may have published these rows and newer ones of their keys:
            # records still queued here must not follow them onto the topic.
            self._producer.purge(in_queue=True, in_flight=False)
        in_flight = self._producer.flush(2.0)
        if in_flight:
            # Records not yet sent must not go out late, behind the next leader's.
            self._producer.purge(in_queue=True, in_flight=False)
            log.warning(
                "%d records were not confirmed by Kafka; their rows stay unpublished and are "
                "published again by the next leader",
                in_flight,
            )
