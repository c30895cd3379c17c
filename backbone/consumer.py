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
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from importlib import import_module
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from django.conf import settings
from django.db import transaction

from . import inbox
from .correlation import correlation_scope
from .deadletters import (
    DeadLetterPublisher,
    DeadLetterPublishError,
    KafkaDeadLetterPublisher,
    KeyGate,
    describe_failure,
    note_refused_copies,
    park,
    summary,
    write_dead_letter,
)
from .failpoints import failpoint
from .kafka import consumer_config, group_id, physical_topic
from .models import DeadLetterReason
from .outages import DATABASE_UNAVAILABLE, DatabaseOutage, connection_lost
from .records import (
    BatchItems,
    ConsumedRecord,
    Invalid,
    Routed,
    Routes,
    Unrouted,
    handle,
    handle_batch,
    route,
)
from .subscriptions import Subscription, subscriptions

log = logging.getLogger(__name__)


class DeadLetterLimitReached(RuntimeError):
    """Too many dead letters in too little time: the runner stops instead of writing more."""


@dataclass(frozen=True)
class RunnerOptions:
    batch_size: int = 500
    max_attempts: int = 4
    retry_delay: float = 0.2  # before the 2nd attempt; doubles for each further one
    max_retry_delay: float = 5.0
    dead_letter_limit: int = 50
    dead_letter_window: float = 600.0  # seconds; 0 counts the whole run
    poll_timeout: float = 0.5
    status_interval: float = 30.0
    idle_exit: float | None = None  # stop after this many seconds without records
    once: bool = False  # stop as soon as the assigned partitions are caught up

    @classmethod
    def from_settings(cls, **overrides: Any) -> "RunnerOptions":
        configured = {
            "batch_size": settings.CONSUMER_BATCH_SIZE,
            "max_attempts": settings.CONSUMER_MAX_ATTEMPTS,
            "retry_delay": settings.CONSUMER_RETRY_DELAY_SECONDS,
            "dead_letter_limit": settings.CONSUMER_DEAD_LETTER_LIMIT,
            "dead_letter_window": settings.CONSUMER_DEAD_LETTER_WINDOW_SECONDS,
            "status_interval": settings.CONSUMER_STATUS_INTERVAL_SECONDS,
        }
        configured.update({name: value for name, value in overrides.items() if value is not None})
        return cls(**configured)

    def backoff(self, attempt: int) -> float:
        """The pause after failed attempt number `attempt` (1-based)."""
        return min(self.retry_delay * 2 ** (attempt - 1), self.max_retry_delay)


@dataclass
class RunStats:
    records: int = 0
    handled: int = 0
    duplicates: int = 0
    skipped: int = 0
    parked: int = 0
    dead_lettered: int = 0
    retries: int = 0

    def add(self, other: "RunStats") -> None:
        for stat in fields(self):
            setattr(self, stat.name, getattr(self, stat.name) + getattr(other, stat.name))

    def __str__(self) -> str:
        return (
            f"handled {self.handled}, duplicates {self.duplicates}, skipped {self.skipped}, "
            f"parked {self.parked}, dead-lettered {self.dead_lettered}, retries {self.retries}"
        )


class KafkaConsumer(Protocol):
    """The part of confluent_kafka.Consumer the runner uses (fakes implement it in tests)."""

    def subscribe(self, topics: list[str], **callbacks: Any) -> None: ...
    def poll(self, timeout: float) -> Message | None: ...
    def consume(self, num_messages: int, timeout: float) -> list[Message]: ...
    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> Any: ...
    def assignment(self) -> list[TopicPartition]: ...
    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]: ...
    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]: ...
    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float | None = None, cached: bool = False
    ) -> tuple[int, int] | None: ...
    def close(self) -> None: ...


class _Interrupted(Exception):
    """Record `index` of the attempted slice stopped the transaction (rolled back)."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


class _HandlerFailed(_Interrupted):
    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(index)
        self.error = error


class _LimitReached(_Interrupted):
    pass


class _BatchHandlerFailed(Exception):
    """A batch handler raised (the transaction rolled back); which record it choked on is unknown."""

    def __init__(self, subscription: Subscription, items: int, error: Exception) -> None:
        super().__init__(subscription.name)
        self.subscription = subscription
        self.items = items
        self.error = error


class _Stopped(Exception):
    """A shutdown was asked for while a record waited for its next attempt."""


class DeadLetterBudget:
    """At most `limit` dead letters within a sliding window of `window` seconds."""

    def __init__(self, *, limit: int, window: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._spent: deque[float] = deque()

    def allows(self, count: int) -> bool:
        if self.window > 0:
            horizon = self._clock() - self.window
            while self._spent and self._spent[0] < horizon:
                self._spent.popleft()
        return len(self._spent) + count <= self.limit

    def spend(self, count: int) -> None:
        now = self._clock()
        self._spent.extend([now] * count)

    def describe(self) -> str:
        span = f"within {self.window:g} s" if self.window > 0 else "in this run"
        return f"{self.limit} dead letters {span}"


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
    ) -> None:
        self.context = context
        self.group = group
        self.options = options
        self.routes = routes if routes is not None else subscriptions.for_context(context)
        self.stats = RunStats()
        self._consumer = consumer
        self._publisher = publisher
        self._clock = clock
        self._sleep = sleep
        self._budget = DeadLetterBudget(
            limit=options.dead_letter_limit, window=options.dead_letter_window, clock=clock
        )
        self._done: dict[tuple[str, int], int] = {}  # (physical topic, partition) -> next offset
        self._stopping = False
        self._outage = DatabaseOutage(context, pause=self._pause, clock=clock)

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
        self._consumer.subscribe(
            [physical_topic(topic) for topic in self.topics()],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        log.info("%s", self._startup_line())
        started = last_record = last_status = self._clock()
        status_records = 0
        try:
            while not self._stopping:
                records = self._poll()
                now = self._clock()
                if records:
                    self._process_until_applied(records)
                    last_record = now
                elif self._should_exit_idle(now - last_record):
                    break
                if now - last_status >= self.options.status_interval:
                    self._log_status(self.stats.records - status_records, now - last_status)
                    last_status, status_records = now, self.stats.records
        except _Stopped:
            pass
        finally:
            self._close()
        log.info(
            "%s: stopped after %.0f s: %s records; %s",
            self.context,
            self._clock() - started,
            self.stats.records,
            self.stats,
        )
        return self.stats

    def _startup_line(self) -> str:
        routes = "; ".join(
            f"{type_name} -> {', '.join(sub.name + (' (batch)' if sub.batch else '') for sub in subs)}"
            for type_name, subs in sorted(self.routes.items())
        )
        return (
            f"consume {self.context}: group {self.group}, topics {', '.join(self.topics())}, "
            f"batch {self.options.batch_size}, {self.options.max_attempts} attempts; handlers: {routes}"
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
        if self.options.once and self._caught_up():
            log.info("%s: caught up, exiting (--once)", self.context)
            return True
        return False

    # --- Applying records -------------------------------------------------------------------

    def _process_until_applied(self, records: Sequence[ConsumedRecord]) -> None:
        """Apply the batch; while PostgreSQL or the dead-letter topic is away, wait and apply
        again what did not commit (a rolled-back transaction left nothing behind)."""
        self._notice_rewinds(records)
        pending = list(records)
        copy_failures = 0
        while True:
            try:
                with _cyclic_gc_paused():
                    self._process_all(pending)
            except DATABASE_UNAVAILABLE as error:
                pending = [record for record in pending if not self._is_done(record)]
                self._outage.wait(error, records=len(pending))
                continue
            except DeadLetterPublishError as error:
                # Dead letters and their .dlq copies are written together, or not at all.
                pending = [record for record in pending if not self._is_done(record)]
                copy_failures += 1
                delay = self.options.backoff(copy_failures)
                log.warning(
                    "%s: %s; applying %s record(s) again in %.1f s", self.context, error, len(pending), delay
                )
                self._pause(delay)
                continue
            self._outage.recovered()
            return

    def _is_done(self, record: ConsumedRecord) -> bool:
        return record.offset < self._done.get((physical_topic(record.topic), record.partition), -1)

    def _notice_rewinds(self, records: Sequence[ConsumedRecord]) -> None:
        """Say so when a partition's offsets go back: its topic was recreated or truncated, or
        the cluster changed. Reading it again is safe (the inbox knows every ce_id, and dead
        letters are matched by ce_id, never by position alone), but an operator should know."""
        first: dict[tuple[str, int], int] = {}
        for record in records:
            first.setdefault((record.topic, record.partition), record.offset)
        for (topic, partition), offset in first.items():
            done = self._done.get((physical_topic(topic), partition))
            if done is not None and offset < done:
                log.warning(
                    "%s: %s[%s] went back from offset %s to %s: topic recreated or truncated? "
                    "Reading it again; records already handled are recognised by their ce_id",
                    self.context,
                    topic,
                    partition,
                    done,
                    offset,
                )

    def _process_all(self, records: Sequence[ConsumedRecord]) -> None:
        pending = list(records)
        batched = True
        while pending:
            done, interruption = self._apply_longest_prefix(pending, batched=batched)
            self._mark_done(pending[:done])
            if interruption is None:
                return
            if isinstance(interruption, _BatchHandlerFailed):
                # Nothing was applied (done == 0). The rest of this poll goes one event at a time,
                # where a failure names its record; per event, no batch handler can fail like this.
                self._log_batch_failure(interruption)
                batched = False
                continue
            if isinstance(interruption, _LimitReached):
                raise self._limit_error()
            assert isinstance(interruption, _HandlerFailed)
            self._settle(pending[done], interruption.error)
            pending = pending[done + 1 :]

    def _apply_longest_prefix(
        self, records: list[ConsumedRecord], *, batched: bool
    ) -> tuple[int, _Interrupted | _BatchHandlerFailed | None]:
        """Apply as many records as work, in one transaction; say which one stopped them."""
        interruption: _Interrupted | None = None
        limit = len(records)
        while limit > 0:
            try:
                self._apply(records[:limit], batched=batched)
                return limit, interruption
            except _Interrupted as stopped:
                interruption, limit = stopped, stopped.index
            except _BatchHandlerFailed as failed:
                return 0, failed
        return 0, interruption

    def _apply(
        self,
        records: Sequence[ConsumedRecord],
        *,
        batched: bool,
        exhausted: tuple[str, int] | None = None,
    ) -> None:
        """One transaction: inbox rows, handlers, parked records and dead letters of `records`.

        `batched` gathers the events of batch handlers and calls each once at the end; without
        it they are called per event, in record order. `exhausted` (error, attempts) makes the
        single record given a dead letter if it would otherwise be handled. Raises
        _Interrupted subclasses and _BatchHandlerFailed (the transaction rolled back).
        """
        stats = RunStats(records=len(records))
        with transaction.atomic():
            gate = KeyGate.load(self.group)
            to_handle: list[tuple[int, ConsumedRecord, Routed]] = []
            for index, record in enumerate(records):
                routed = self._sort(index, record, gate, stats, exhausted)
                if routed is not None:
                    to_handle.append((index, record, routed))
            new_ids = inbox.claim(
                group=self.group, items=[(record, routed) for _, record, routed in to_handle]
            )
            batches: BatchItems | None = {} if batched else None
            for index, _, routed in to_handle:
                if routed.event_id not in new_ids:  # handled before, or twice in this batch
                    stats.duplicates += 1
                    continue
                new_ids.discard(routed.event_id)
                try:
                    handle(routed, batches=batches)
                except Exception as error:
                    if connection_lost(error):
                        raise  # PostgreSQL is away: not the handler's failure (see outages.py)
                    raise _HandlerFailed(index, error) from error
                stats.handled += 1
            for subscription, items in (batches or {}).items():
                try:
                    handle_batch(subscription, items)
                except Exception as error:
                    if connection_lost(error):
                        raise
                    raise _BatchHandlerFailed(subscription, len(items), error) from error
            if stats.dead_lettered:
                # The .dlq copies are stored (or refused for good, and the rows say so) before
                # the rows commit; a copy that may work later rolls the batch back, to try again.
                note_refused_copies(self._publisher.flush())
        self.stats.add(stats)
        self._budget.spend(stats.dead_lettered)

    def _sort(
        self,
        index: int,
        record: ConsumedRecord,
        gate: KeyGate,
        stats: RunStats,
        exhausted: tuple[str, int] | None,
    ) -> Routed | None:
        """Skip, park or dead-letter a record right here; return it if its handlers should run."""
        if gate.is_dead_letter(record):  # redelivered after a crash: it already waits as one
            stats.skipped += 1
            return None
        outcome = route(record, self.routes)
        if isinstance(outcome, Unrouted):
            stats.skipped += 1
            return None
        blocker = gate.blocker(record)
        if blocker is not None:
            park(group=self.group, record=record, dead_letter_id=blocker)
            stats.parked += 1
            return None
        if isinstance(outcome, Invalid):
            self._dead_letter(index, record, gate, stats, DeadLetterReason.INVALID_RECORD, outcome.error, 1)
            return None
        if exhausted is not None:
            self._dead_letter(index, record, gate, stats, DeadLetterReason.HANDLER_FAILED, *exhausted)
            return None
        return outcome

    def _dead_letter(
        self,
        index: int,
        record: ConsumedRecord,
        gate: KeyGate,
        stats: RunStats,
        reason: DeadLetterReason,
        error: str,
        attempts: int,
    ) -> None:
        if not self._budget.allows(stats.dead_lettered + 1):
            raise _LimitReached(index)
        dead_letter_id = write_dead_letter(
            group=self.group,
            context=self.context,
            record=record,
            reason=reason,
            error=error,
            attempts=attempts,
        )
        if dead_letter_id is None:  # a redelivery of a record that already is one
            stats.skipped += 1
            return
        gate.block(record, dead_letter_id)
        self._publisher.publish(
            record,
            dead_letter_id=dead_letter_id,
            group=self.group,
            reason=reason,
            error=error,
            attempts=attempts,
        )
        stats.dead_lettered += 1
        with correlation_scope(record.header("ce_correlationid") or None):
            log.error(
                "%s: %s dead-lettered as #%s after %s attempt(s): %s",
                self.context,
                record.describe(),
                dead_letter_id,
                attempts,
                summary(error),
            )

    def _settle(self, record: ConsumedRecord, error: Exception) -> None:
        """Retry a failing record alone with backoff; dead-letter it after the last attempt.
        Alone, a batch handler is called with this one record: its failure is the record's."""
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
            try:
                self._apply([record], batched=False)
            except _HandlerFailed as failed:
                attempts, error = attempts + 1, failed.error
                continue
            except _LimitReached:
                raise self._limit_error() from None
            self._mark_done([record])
            return
        try:
            self._apply([record], batched=False, exhausted=(describe_failure(error), attempts))
        except _LimitReached:
            raise self._limit_error() from None
        self._mark_done([record])

    def _log_batch_failure(self, failed: _BatchHandlerFailed) -> None:
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
        raise _Stopped

    def _limit_error(self) -> DeadLetterLimitReached:
        return DeadLetterLimitReached(
            f"consumer {self.context} stopped: more than {self._budget.describe()} "
            f"(CONSUMER_DEAD_LETTER_LIMIT); a handler is probably broken. Work done so far is "
            f"committed; fix the cause, then restart it and replay the dead letters"
        )

    # --- Offsets ----------------------------------------------------------------------------

    def _mark_done(self, records: Sequence[ConsumedRecord]) -> None:
        """Called right after the database commit: now the offsets may move on."""
        if not records:
            return
        failpoint("consumer.after-db-commit")
        batch: dict[tuple[str, int], int] = {}
        for record in records:
            batch[(physical_topic(record.topic), record.partition)] = record.offset + 1
        self._done.update(batch)
        # Asynchronous: a lost commit only means a redelivery, which the inbox absorbs.
        self._commit(batch, asynchronous=True)

    def _commit(self, offsets: dict[tuple[str, int], int], *, asynchronous: bool) -> None:
        if not offsets:
            return
        partitions = [
            TopicPartition(topic, partition, offset) for (topic, partition), offset in offsets.items()
        ]
        try:
            self._consumer.commit(offsets=partitions, asynchronous=asynchronous)
        except KafkaException as error:
            log.warning("%s: offset commit failed (records will be redelivered): %s", self.context, error)

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        log.info("%s: assigned %s", self.context, _describe_partitions(partitions))

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Another member takes these partitions: commit what is done with them, now."""
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        offsets = {tp: offset for tp, offset in self._done.items() if tp in revoked}
        self._commit(offsets, asynchronous=False)
        for tp in revoked:
            self._done.pop(tp, None)
        log.info("%s: revoked %s", self.context, _describe_partitions(partitions))

    def _on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """The partitions are already someone else's: committing would fail; forget them."""
        for tp in partitions:
            self._done.pop((tp.topic, tp.partition), None)
        log.warning(
            "%s: lost %s (uncommitted work will be redelivered)",
            self.context,
            _describe_partitions(partitions),
        )

    def _close(self) -> None:
        self._commit(self._done, asynchronous=False)
        self._consumer.close()

    # --- Status -----------------------------------------------------------------------------

    def _log_status(self, records: int, seconds: float) -> None:
        lag = self._lag(fresh=False)
        log.info(
            "%s: %.0f records/s; %s; lag %s",
            self.context,
            records / seconds if seconds > 0 else 0.0,
            self.stats,
            "?" if lag is None else lag,
        )

    def _caught_up(self) -> bool:
        return self._lag(fresh=True) == 0

    def _lag(self, *, fresh: bool) -> int | None:
        """Records behind the end of the assigned partitions (None while unknown)."""
        assignment = self._consumer.assignment()
        if not assignment:
            return None
        positions = self._consumer.position(assignment)
        unknown = [tp for tp in positions if tp.offset < 0]
        committed: dict[tuple[str, int], int] = {}
        if unknown:
            if not fresh:
                return None
            committed = {(tp.topic, tp.partition): tp.offset for tp in self._consumer.committed(unknown, 10)}
        total = 0
        for tp in positions:
            watermarks = self._consumer.get_watermark_offsets(tp, timeout=10, cached=not fresh)
            if watermarks is None or watermarks[1] < 0:
                return None
            low, high = watermarks
            offset = tp.offset if tp.offset >= 0 else committed.get((tp.topic, tp.partition), -1)
            total += max(0, high - (offset if offset >= 0 else low))
        return total


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


def _describe_partitions(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"


def load_handler_modules(extra: Sequence[str] = ()) -> None:
    """Import handler modules besides each context's handlers.py (settings + `--handlers`)."""
    for module in [*settings.BACKBONE_EXTRA_HANDLER_MODULES, *extra]:
        import_module(module)


def create_runner(*, context: str, options: RunnerOptions) -> ConsumerRunner:
    """The one place a real runner is wired: a Kafka consumer and a `.dlq` publisher."""
    group = group_id(context)
    consumer = Consumer(consumer_config(group, **{"client.id": f"consume-{context}"}))
    return ConsumerRunner(
        context=context,
        group=group,
        consumer=consumer,
        publisher=KafkaDeadLetterPublisher.create(),
        options=options,
    )
