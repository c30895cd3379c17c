"""What the relay is configured with, and the shapes of what it is given."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from .publisher import Producer

Connect = Callable[[], psycopg.Connection]
ProducerFactory = Callable[[], Producer]
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class RelayOptions:
    batch_size: int = 2000  # rows read, produced, confirmed and marked together
    window_size: int = 50_000  # rows ordered by one scan of the backlog
    mark_connections: int = 2  # batches marked in parallel, while later ones are published
    # A wake-up's few marks wait this long for the next wake-ups', to go in one statement
    # (0: each batch is marked at once). See marker.HeldMarks. Off by default: with 0.1 s,
    # commit->readable right after a 30,000-row burst rose from p50 1.3 ms to 2.3 s in the
    # bench's latency part (docs/relay.md), a cause not found yet.
    mark_hold: float = 0.0
    poll_interval: float = 5.0  # the safety net under LISTEN/NOTIFY
    retention: timedelta = timedelta(hours=72)
    event_log_retention: timedelta = timedelta(days=400)  # the compact records of published events
    cleanup_interval: float = 300.0
    cleanup_chunk: int = 5000
    status_interval: float = 60.0
    standby_retry: float = 1.0
    max_backoff: float = 30.0
    shutdown_grace: float = 10.0  # how long a stopping relay waits for Kafka to confirm a batch
    kafka_address: str = "Kafka"  # only for log lines
    # A standby ends the lock session of a leader that ran no statement on it for this long
    # while rows of its shard wait (None: never). Must exceed the longest a working leader
    # leaves it idle: the poll interval, max_backoff and the Kafka probes (see stalls.py).
    takeover_after: float | None = None
