"""A consumer runner's Prometheus metrics: records by outcome, batch time, lag per partition.

Counted once per batch (one step per outcome that occurred), not per record. Lag is read from
the consumer's own positions and cached high watermarks (no broker round trip), at most once
every `LAG_INTERVAL` seconds.
"""

import time
from collections.abc import Callable, Mapping
from dataclasses import fields

from prometheus_client import Counter, Gauge, Histogram

from .stats import RunStats

RECORDS = Counter(
    "backbone_consumer_records",
    "Records a consumer group dealt with, by outcome "
    "(handled, duplicate, skipped, parked, dead_lettered, retried).",
    ["group", "outcome"],
)
BATCH_DURATION = Histogram(
    "backbone_consumer_batch_duration_seconds",
    "Seconds to apply one batch of records in one database transaction.",
    ["group"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LAG = Gauge(
    "backbone_consumer_lag_records",
    "Records behind the high watermark, per consumer group and assigned partition.",
    ["group", "topic", "partition"],
)

# RunStats field -> outcome label (Prometheus label values read best as nouns or past participles).
_OUTCOMES = {
    "handled": "handled",
    "duplicates": "duplicate",
    "skipped": "skipped",
    "parked": "parked",
    "dead_lettered": "dead_lettered",
    "retries": "retried",
}
assert set(_OUTCOMES) == {stat.name for stat in fields(RunStats)} - {"records"}

LAG_INTERVAL = 1.0


class ConsumerMetrics:
    """The metric children of one consumer group, bound once so a batch costs few lookups."""

    def __init__(self, group: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.group = group
        self._outcomes = {stat: RECORDS.labels(group, label) for stat, label in _OUTCOMES.items()}
        self._batch = BATCH_DURATION.labels(group)
        self._lag_labels: set[tuple[str, str]] = set()
        self._clock = clock
        self._lag_due = 0.0

    def batch_applied(self, stats: RunStats, seconds: float) -> None:
        self._batch.observe(seconds)
        self.count(stats)

    def count(self, stats: RunStats) -> None:
        for stat, child in self._outcomes.items():
            value = getattr(stats, stat)
            if value:
                child.inc(value)

    def lag_due(self) -> bool:
        now = self._clock()
        if now < self._lag_due:
            return False
        self._lag_due = now + LAG_INTERVAL
        return True

    def set_lag(self, lags: Mapping[tuple[str, int], int]) -> None:
        """Lag per (topic, partition) of the current assignment; revoked partitions disappear."""
        current = {(topic, str(partition)) for topic, partition in lags}
        for gone_topic, gone_partition in self._lag_labels - current:
            LAG.remove(self.group, gone_topic, gone_partition)
        for (topic, partition), lag in lags.items():
            LAG.labels(self.group, topic, str(partition)).set(lag)
        self._lag_labels = current
