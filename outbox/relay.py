"""The outbox relay: publish every committed outbox row to Kafka, in commit order.

One relay is active at a time (the leader, see `leader.py`); others stand by. The leader
reads unpublished rows in the order their transactions committed, produces them with an
idempotent producer, and marks a row published only once Kafka's delivery report confirmed
it. It sleeps on LISTEN/NOTIFY between commits, waits out Kafka outages (rows simply wait in
the outbox), and deletes published rows after the retention period (see `term.py`).

Everything it talks to is passed in (`connect`, `producer_factory`, `clock`), so tests can
run it against fakes; `manage.py relay` wires the real ones.
"""

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, closing, contextmanager
from typing import Any

import psycopg

from backbone.heartbeat import Heartbeat

from .backoff import Backoff, StopFlag
from .leader import AnotherLeader, LeaderLock, LeadershipLost
from .listener import OutboxListener
from .marker import BackgroundMarker
from .metrics import LEADER
from .options import Clock, Connect, ProducerFactory, RelayOptions
from .shards import RelayLayout, Shard, ShardLock
from .stalls import stalled_leaders, terminate, terminate_stalled_layout_members
from .store import OutboxStore, commit_timestamps_tracked
from .term import LeaderTerm

__all__ = ["Clock", "Connect", "ProducerFactory", "Relay", "RelayOptions", "database_connector"]

log = logging.getLogger(__name__)


class Relay:
    """Stands by until it holds the leader lock, then publishes until stopped."""

    def __init__(
        self,
        *,
        connect: Connect,
        producer_factory: ProducerFactory,
        clock: Clock,
        stop: StopFlag,
        options: RelayOptions | None = None,
        heartbeat: Heartbeat | None = None,
        shard: Shard | None = None,
        layout: RelayLayout | None = None,
    ) -> None:
        self._connect = connect
        # Without a layout (tests, the bench's SQL), this relay leads the whole outbox alone.
        self._shard = shard or Shard()
        self._layout = layout
        self._producer_factory = producer_factory
        self._clock = clock
        self._stop = stop
        self._options = options or RelayOptions()
        self._heartbeat = heartbeat
        self.published = 0
        self._leading = LEADER.labels(str(self._shard.number))
        self._leading.set(0)  # a relay standing by is seen as one, not as a missing series

    def run(self, *, once: bool = False) -> None:
        """Publish until stopped; with `once`, publish what is pending and return.

        With `once`, another relay being the leader raises AnotherLeader instead of waiting.
        """
        database_backoff = Backoff(cap=self._options.max_backoff)
        while not self._stop.is_set():
            try:
                lock = self._become_leader(wait=not once)
                if lock is None:
                    break
                self._leading.set(1)
                try:
                    self._lead(lock, once=once)
                finally:
                    self._leading.set(0)
                    lock.release()
                if once:
                    break
            except LeadershipLost as error:
                log.warning("%s: no longer the leader, standing by", error)
            except psycopg.OperationalError as error:
                delay = database_backoff.next_delay()
                log.warning("PostgreSQL unavailable (%s); retrying in %.1fs", _first_line(error), delay)
                self._stop.wait(delay)
        if self._heartbeat is not None:
            self._heartbeat.stop()
        log.info("relay stopped; published %d rows", self.published)

    def _become_leader(self, *, wait: bool) -> LeaderLock | None:
        """Wait until this relay holds the leader lock (None if stopped first)."""
        lock = (
            LeaderLock(self._connect)
            if self._layout is None
            else ShardLock(self._connect, self._shard, self._layout)
        )
        try:
            if self._acquire(lock, wait=wait):
                return lock
        except BaseException:
            lock.release()
            raise
        lock.release()
        return None

    def _acquire(self, lock: LeaderLock, *, wait: bool) -> bool:
        announced = False
        while not self._stop.is_set():
            if lock.try_acquire() or (self._fenced_stalled_leader(lock) and lock.try_acquire()):
                log.info("this relay is now the leader%s: publishing the outbox", self._shard.label)
                return True
            if not wait:
                raise AnotherLeader(
                    f"another relay is the leader{self._shard.label} and publishes the outbox"
                )
            if not announced:
                log.info(
                    "another relay leads%s; standing by (retrying every %gs)",
                    self._shard.label,
                    self._options.standby_retry,
                )
                announced = True
            if self._heartbeat is not None:
                self._heartbeat.beat(state="standby")
            self._stop.wait(self._options.standby_retry)
        return False

    def _fenced_stalled_leader(self, lock: LeaderLock) -> bool:
        """End the lock session of a leader that stopped making progress while rows wait.

        Its lock goes with the session. When the frozen process wakes, its next statement on
        that session fails, so it stops before its next batch and stands by (docs/relay.md).
        """
        after = self._options.takeover_after
        if after is None:
            return False
        with lock.session().cursor() as cursor:
            if self._shard.count > 1 and terminate_stalled_layout_members(
                cursor, count=self._shard.count, after=after
            ):
                log.warning("ended the shard layout registration of a relay stalled for over %gs", after)
            for stalled in stalled_leaders(cursor, after=after, lock_key=lock.key):
                if terminate(cursor, stalled):
                    log.warning(
                        "the leader%s %s (limit %gs): ended its session to take over",
                        self._shard.label,
                        stalled.describe(),
                        after,
                    )
                    return True
        return False

    def _lead(self, lock: LeaderLock, *, once: bool) -> None:
        with self._term(lock) as term:
            try:
                term.run(once=once)
            finally:
                self.published += term.published

    @contextmanager
    def _term(self, lock: LeaderLock) -> Iterator[LeaderTerm]:
        """A leader term with its own connections: reads, marks and LISTEN."""
        with ExitStack() as stack:
            reads = stack.enter_context(self._connect())
            marks = [stack.enter_context(self._connect()) for _ in range(self._options.mark_connections)]
            in_commit_order = commit_timestamps_tracked(reads)
            if not in_commit_order:
                log.warning(
                    "track_commit_timestamp is off: publishing in id order, which can reorder an "
                    "aggregate's events when transactions commit out of id order. Set "
                    "track_commit_timestamp = on in postgresql.conf and restart PostgreSQL."
                )
            listener = stack.enter_context(closing(OutboxListener(self._connect(), self._stop)))
            marker = stack.enter_context(closing(BackgroundMarker([OutboxStore(c) for c in marks])))
            term = LeaderTerm(
                store=OutboxStore(
                    reads, in_commit_order=in_commit_order, shard=(self._shard.number, self._shard.count)
                ),
                marker=marker,
                listener=listener,
                lock=lock,
                producer_factory=self._producer_factory,
                clock=self._clock,
                stop=self._stop,
                options=self._options,
                heartbeat=self._heartbeat,
                cleans_up=self._shard.cleans_up,
            )
            stack.callback(term.close)
            yield term


# Django-only keys in DATABASES[...]["OPTIONS"]; the rest are libpq connection parameters.
_DJANGO_ONLY_OPTIONS = {"isolation_level", "server_side_binding", "assume_role", "pool"}


def database_connector(database: Mapping[str, Any]) -> Connect:
    """Connections for the relay from a Django DATABASES entry: autocommit, named, with
    TCP keepalives so a vanished peer is noticed (and a dead leader's lock freed) quickly."""
    options = {k: v for k, v in database.get("OPTIONS", {}).items() if k not in _DJANGO_ONLY_OPTIONS}

    def connect() -> psycopg.Connection:
        return psycopg.connect(
            host=database["HOST"] or None,
            port=database["PORT"] or None,
            user=database["USER"] or None,
            password=database["PASSWORD"] or None,
            dbname=database["NAME"],
            autocommit=True,
            application_name=f"outbox-relay pid={os.getpid()}",
            connect_timeout=5,
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
            **options,
        )

    return connect


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
