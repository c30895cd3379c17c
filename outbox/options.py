"""What the relay is configured with, and the shapes of what it is given."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg

from backbone.conf import backbone_settings
from backbone.conf import field_from_setting as _setting

from .publisher import Producer

Connect = Callable[[], psycopg.Connection]
ProducerFactory = Callable[[], Producer]
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class RelayOptions:
    batch_size: int = _setting("RELAY_BATCH_SIZE")  # rows read, produced, confirmed and marked together
    window_size: int = 50_000  # rows ordered by one scan of the backlog
    mark_connections: int = 2  # batches marked in parallel, while later ones are published
    # A wake-up's few marks wait this long for the next wake-ups', to go in one statement
    # (0: each batch is marked at once). See marker.HeldMarks. Off by default: with 0.1 s,
    # commit->readable right after a 30,000-row burst rose from p50 1.3 ms to 2.3 s in the
    # bench's latency part (docs/relay.md), a cause not found yet.
    mark_hold: float = 0.0
    poll_interval: float = _setting("RELAY_POLL_INTERVAL_SECONDS")  # the safety net under LISTEN/NOTIFY
    linger: float = _setting("RELAY_LINGER_SECONDS")  # after a wake-up, for the commits behind it
    retention: timedelta = field(
        default_factory=lambda: timedelta(hours=backbone_settings.OUTBOX_RETENTION_HOURS)
    )
    # the compact records of published events
    event_log_retention: timedelta = field(
        default_factory=lambda: timedelta(days=backbone_settings.EVENT_LOG_RETENTION_DAYS)
    )
    cleanup_interval: float = _setting("RELAY_CLEANUP_INTERVAL_SECONDS")
    cleanup_chunk: int = 5000
    status_interval: float = _setting("RELAY_STATUS_INTERVAL_SECONDS")
    standby_retry: float = 1.0
    max_backoff: float = _setting("RELAY_MAX_BACKOFF_SECONDS")
    shutdown_grace: float = 10.0  # how long a stopping relay waits for Kafka to confirm a batch
    kafka_address: str = _setting("KAFKA_BOOTSTRAP_SERVERS")  # only for log lines
    # A standby ends the lock session of a leader that ran no statement on it for this long
    # while rows of its shard wait (None: never). Must exceed the longest a working leader
    # leaves it idle: the poll interval, max_backoff and the Kafka probes (see stalls.py).
    # Off unless asked for: `manage.py relay` asks with BACKBONE["RELAY_TAKEOVER_AFTER_SECONDS"].
    takeover_after: float | None = None
