"""The consumer runner behind `manage.py consume <context>`: effectively-once handling.

One consumer group per context reads the topics of the event types the context subscribed
to. Records are taken in batches; a batch is applied in ONE database transaction that holds
the inbox rows of its events (a redelivered event finds its row and changes nothing), the
handlers' changes, parked records and dead letters. Kafka offsets are committed only after
that transaction commits, so a crash in between redelivers records the inbox then skips.

A batch runs without savepoints: a savepoint per record costs two round trips and a
subtransaction each, and more than 64 subtransactions in one transaction slow down every
other session's snapshots. When a handler fails, the transaction rolls back, the records
before the failing one are applied again and committed, and the failing record is retried
alone with exponential backoff, sleeping outside any transaction. After the last attempt it
becomes a dead letter (table + `<topic>.dlq`) and the partition moves on; later records of
its key are parked behind it (see backbone.deadletters). A record that is not a valid event
goes to the dead letters at once. Past a limit of dead letters the runner stops: a bug in a
handler must not send every record there.

Batch handlers (`@subscribe_batch`) run once per transaction, after the per-event handlers,
with the new events of their type in record order. Which event broke a failing batch handler
is unknown, so the transaction rolls back and the batch is applied again with the batch
handlers called one event at a time, in record order like per-event handlers: the failing
event is then found, and retried or dead-lettered alone, as above.
"""

import gc
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from confluent_kafka import KafkaError, KafkaException

from ..correlation import correlation_scope
from ..deadletters import (
    DeadLetterPublisher,
    DeadLetterPublishError,
    describe_failure,
    has_retries,
    next_retry_at,
    replay_known_versions,
    retry_due,
)
from ..heartbeat import Heartbeat
from ..kafka import logical_topic, physical_topic
from ..outages import DATABASE_UNAVAILABLE, DatabaseOutage
from ..records import ConsumedRecord, Routes
from ..subscriptions import subscriptions
from .batch import BatchApplier
from .budget import DeadLetterBudget
from .interruptions import BatchHandlerFailed, HandlerFailed, Interrupted, LimitReached, Stopped
from .metrics import ConsumerMetrics
from .offsets import Offsets
from .options import RunnerOptions
from .protocol import KafkaConsumer
from .stats import RunStats

log = logging.getLogger(__name__)

_RETRY_CHECK_SECONDS = 1.0  # how often the runner looks for records whose retry is due


class ConsumerRunner:
    """Runs one context's handlers over its topics; `run()` returns when asked to stop."""

    def __init__(
        self,
        *,
        context: str,
        group: str,
        consumer: KafkaConsumer,
        publisher: DeadLetterPublisher,
        options: RunnerOptions,
        routes: Routes | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.context = context
        self.group = group
        self.options = options
        self.routes = routes if routes is not None else subscriptions.for_context(context)
        self.stats = RunStats()
        self.metrics = ConsumerMetrics(group)
        self._consumer = consumer
        self._publisher = publisher
        self._clock = clock
        self._sleep = sleep
        self._budget = DeadLetterBudget(
            limit=options.dead_letter_limit, window=options.dead_letter_window, clock=clock
        )
        self._batch = BatchApplier(
            context=context, group=group, routes=self.routes, publisher=publisher, budget=self._budget
        )
        self._offsets = Offsets(context=context, consumer=consumer)
        self._stopping = False
        self._heartbeat = heartbeat
        self._last_handled_at: str | None = None  # wall clock, for `manage.py status`
        self._outage = DatabaseOutage(context, pause=self._pause, clock=clock)
        self._retries_checked_at = float("-inf")

    # --- The loop ---------------------------------------------------------------------------

    def topics(self) -> list[str]:
        return sorted({subs[0].event_type.topic for subs in self.routes.values() if subs})

    def stop(self) -> None:
        """Finish the current batch, commit, leave: safe to call from a signal handler."""
        if not self._stopping:
            log.info("%s: stopping after the current batch", self.context)
        self._stopping = True

    def run(self) -> RunStats:
        if not self.routes:
            raise ValueError(f"context {self.context!r} has no handlers")
        self._apply_known_versions()
        self._consumer.subscribe(
            [physical_topic(topic) for topic in self.topics()],
            on_assign=self._offsets.on_assign,
            on_revoke=self._offsets.on_revoke,
            on_lost=self._offsets.on_lost,
        )
        log.info("%s", self._startup_line())
        started = last_record = last_status = self._clock()
        status_records = 0
        try:
            while not self._stopping:
                # Reading a batch creates its records too: the collector waits until it is applied.
                with _cyclic_gc_paused():
                    records = self._poll()
                    if records:
                        self._process_until_applied(records)
                now = self._clock()
                if records:
                    last_record = now
                    self._last_handled_at = datetime.now(UTC).isoformat()
                elif self._should_exit_idle(now - last_record):
                    break
                else:
                    self._offsets.confirm_when_idle()
                self._retry_when_due(now)
                self._beat()
                if self.metrics.lag_due():
                    self.metrics.set_lag(self._offsets.partition_lags())
                if now - last_status >= self.options.status_interval:
                    self._log_status(self.stats.records - status_records, now - last_status)
                    last_status, status_records = now, self.stats.records
        except Stopped:
            pass
        finally:
            self._offsets.close()
            if self._heartbeat is not None:
                self._heartbeat.stop()
        log.info(
            "%s: stopped after %.0f s: %s records; %s",
            self.context,
            self._clock() - started,
            self.stats.records,
            self.stats,
        )
        return self.stats

    def _apply_known_versions(self) -> None:
        """Records kept because their version was newer than the code then running: this code
        may read them now (a rolling deploy reached this consumer), and nothing else would."""
        try:
            applied = replay_known_versions(
                group=self.group, routes=self.routes, publisher_factory=lambda: self._publisher
            )
        except (*DATABASE_UNAVAILABLE, DeadLetterPublishError) as error:
            log.warning("%s: records of newer versions not replayed now: %s", self.context, error)
            return
        if applied:
            log.info("%s: %s record(s) of a version this code now reads applied", self.context, applied)
            self.stats.add(RunStats(handled=applied))

    def _startup_line(self) -> str:
        routes = "; ".join(
            f"{type_name} -> {', '.join(sub.name + (' (batch)' if sub.batch else '') for sub in subs)}"
            for type_name, subs in sorted(self.routes.items())
        )
        delays = ", ".join(f"{delay:g}" for delay in self.options.retry_schedule)
        schedule = f" (retries after {delays} s)" if delays else ""
        return (
            f"consume {self.context}: group {self.group}, topics {', '.join(self.topics())}, "
            f"batch {self.options.batch_size}, {self.options.attempts} attempts{schedule}; handlers: {routes}"
        )

    def _poll(self) -> list[ConsumedRecord]:
        # poll() returns as soon as one record is there (low latency when traffic is light);
        # consume(timeout=0) then takes what is already fetched (large batches under load).
        first = self._consumer.poll(self.options.poll_timeout)
        if first is None:
            return []
        messages = [first]
        if self.options.batch_size > 1:
            messages.extend(self._consumer.consume(num_messages=self.options.batch_size - 1, timeout=0))
        records = []
        for message in messages:
            error = message.error()
            if error is None:
                records.append(ConsumedRecord.from_message(message))
            elif error.fatal():
                raise KafkaException(error)
            elif error.code() != KafkaError._PARTITION_EOF:
                log.warning("%s: consumer error: %s", self.context, error.str())
        return records

    def _should_exit_idle(self, idle_for: float) -> bool:
        if self.options.idle_exit is not None and idle_for >= self.options.idle_exit:
            log.info("%s: idle for %.0f s, exiting", self.context, idle_for)
            return True
        if self.options.once and self._caught_up() and not self._waiting_retries():
            log.info("%s: caught up, exiting (--once)", self.context)
            return True
        return False

    # --- Applying records -------------------------------------------------------------------

    def _process_until_applied(self, records: Sequence[ConsumedRecord]) -> None:
        """Apply the batch; while PostgreSQL or the dead-letter topic is away, wait and apply
        again what did not commit (a rolled-back transaction left nothing behind)."""
        self._offsets.notice_rewinds(records)
        pending = list(records)
        copy_failures = 0
        while True:
            try:
                with _cyclic_gc_paused():
                    self._process_all(pending)
            except DATABASE_UNAVAILABLE as error:
                pending = [record for record in pending if not self._offsets.is_done(record)]
                self._outage.wait(error, records=len(pending))
                continue
            except DeadLetterPublishError as error:
                # Dead letters and their .dlq copies are written together, or not at all.
                pending = [record for record in pending if not self._offsets.is_done(record)]
                copy_failures += 1
                delay = self.options.backoff(copy_failures)
                log.warning(
                    "%s: %s; applying %s record(s) again in %.1f s", self.context, error, len(pending), delay
                )
                self._pause(delay)
                continue
            self._outage.recovered()
            return

    def _process_all(self, records: Sequence[ConsumedRecord]) -> None:
        pending = list(records)
        batched = True
        while pending:
            done, interruption = self._apply_longest_prefix(pending, batched=batched)
            self._offsets.mark_done(pending[:done])
            if interruption is None:
                return
            if isinstance(interruption, BatchHandlerFailed):
                # Nothing was applied (done == 0). The rest of this poll goes one event at a time,
                # where a failure names its record; per event, no batch handler can fail like this.
                self._log_batch_failure(interruption)
                batched = False
                continue
            if isinstance(interruption, LimitReached):
                raise self._budget.exceeded(self.context)
            assert isinstance(interruption, HandlerFailed)
            self._settle(pending[done], interruption.error)
            pending = pending[done + 1 :]

    def _apply_longest_prefix(
        self, records: list[ConsumedRecord], *, batched: bool
    ) -> tuple[int, Interrupted | BatchHandlerFailed | None]:
        """Apply as many records as work, in one transaction; say which one stopped them."""
        interruption: Interrupted | None = None
        limit = len(records)
        while limit > 0:
            try:
                self._apply(records[:limit], batched=batched)
                return limit, interruption
            except Interrupted as stopped:
                interruption, limit = stopped, stopped.index
            except BatchHandlerFailed as failed:
                return 0, failed
        return 0, interruption

    def _apply(
        self,
        records: Sequence[ConsumedRecord],
        *,
        batched: bool,
        exhausted: tuple[str, int] | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        """Apply `records` in one transaction (see batch.py) and count what it did."""
        started = time.perf_counter()
        stats = self._batch.apply(records, batched=batched, exhausted=exhausted, retry_at=retry_at)
        self.metrics.batch_applied(stats, time.perf_counter() - started)
        self.stats.add(stats)

    def _settle(self, record: ConsumedRecord, error: Exception) -> None:
        """Retry a failing record alone with backoff; dead-letter it after the last attempt.
        Alone, a batch handler is called with this one record: its failure is the record's.
        With a retry schedule, the record waits in the table for its first retry instead."""
        if self.options.retry_schedule:
            self._defer(record, error)
            return
        attempts = 1
        while attempts < self.options.max_attempts:
            delay = self.options.backoff(attempts)
            with correlation_scope(record.header("ce_correlationid") or None):
                log.warning(
                    "%s: %s failed (attempt %s of %s), retrying in %.2f s: %s",
                    self.context,
                    record.describe(),
                    attempts,
                    self.options.max_attempts,
                    delay,
                    f"{type(error).__name__}: {error}",
                )
            self._pause(delay)
            self.stats.retries += 1
            self.metrics.count(RunStats(retries=1))
            try:
                self._apply([record], batched=False)
            except HandlerFailed as failed:
                attempts, error = attempts + 1, failed.error
                continue
            except LimitReached:
                raise self._budget.exceeded(self.context) from None
            self._offsets.mark_done([record])
            return
        try:
            self._apply([record], batched=False, exhausted=(describe_failure(error), attempts))
        except LimitReached:
            raise self._budget.exceeded(self.context) from None
        self._offsets.mark_done([record])

    def _defer(self, record: ConsumedRecord, error: Exception) -> None:
        """Park the failed record with a `retry at` time and move on: waiting minutes here would
        hold the consumer out of poll() and stop every key of the partition (see retry.py)."""
        retry_at = next_retry_at(self.options.retry_schedule, 1)
        try:
            self._apply([record], batched=False, exhausted=(describe_failure(error), 1), retry_at=retry_at)
        except LimitReached:
            raise self._budget.exceeded(self.context) from None
        self._offsets.mark_done([record])

    def _retry_when_due(self, now: float) -> None:
        """Between batches, at most once a second: apply the records whose retry is due."""
        if not self.options.retry_schedule or now - self._retries_checked_at < _RETRY_CHECK_SECONDS:
            return
        self._retries_checked_at = now
        try:
            outcome = retry_due(
                group=self.group,
                routes=self.routes,
                schedule=self.options.retry_schedule,
                publisher=self._publisher,
            )
        except (*DATABASE_UNAVAILABLE, DeadLetterPublishError) as error:
            # Nothing committed; the rows wait for the next check.
            log.warning("%s: scheduled retries postponed: %s", self.context, error)
            return
        done = RunStats(retries=outcome.tried, handled=outcome.applied, dead_lettered=outcome.dead_lettered)
        self.stats.add(done)
        self.metrics.count(done)
        self._budget.spend(outcome.dead_lettered)

    def _waiting_retries(self) -> bool:
        return bool(self.options.retry_schedule) and has_retries(self.group)

    def _log_batch_failure(self, failed: BatchHandlerFailed) -> None:
        log.warning(
            "%s: batch handler %s failed on %s event(s), applying them one at a time: %s",
            self.context,
            failed.subscription.name,
            failed.items,
            f"{type(failed.error).__name__}: {failed.error}",
        )

    def _pause(self, seconds: float) -> None:
        """Sleep in short slices, so a shutdown does not wait for a long backoff."""
        deadline = self._clock() + seconds
        while not self._stopping:
            remaining = deadline - self._clock()
            if remaining <= 0:
                return
            self._sleep(min(remaining, 0.1))
        raise Stopped

    # --- Status -----------------------------------------------------------------------------

    def _beat(self) -> None:
        """Refresh this member's heartbeat row (throttled): its partitions and last handled time."""
        if self._heartbeat is None or not self._heartbeat.due("consuming"):
            return  # the assignment and facts are gathered only for a beat that writes
        partitions = sorted(f"{logical_topic(tp.topic)}/{tp.partition}" for tp in self._consumer.assignment())
        self._heartbeat.beat(
            state="consuming",
            count=self.stats.records,
            facts={"partitions": partitions, "last_handled_at": self._last_handled_at},
        )

    def _log_status(self, records: int, seconds: float) -> None:
        lag = self._offsets.lag(fresh=False)
        log.info(
            "%s: %.0f records/s; %s; lag %s",
            self.context,
            records / seconds if seconds > 0 else 0.0,
            self.stats,
            "?" if lag is None else lag,
        )

    def _caught_up(self) -> bool:
        return self._offsets.lag(fresh=True) == 0


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch is applied.

    Decoding a batch creates tens of thousands of objects that live until the batch is done;
    the collector, triggered every 700 allocations, walked them over and over (half of the
    runner's CPU time with events of a dozen lines). Reference counting frees them when the
    batch ends, and collection resumes between batches.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
