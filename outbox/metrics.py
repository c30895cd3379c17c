"""The relay's Prometheus metrics: what waits in the outbox, what was published, how fast.

Counted per batch, not per record, where that is possible: the published counter moves once per
topic and batch. Publish latency is a histogram of seconds from a row's commit to its delivery
report (one observation per row, a lock and a bisect; the relay spends far more per row on
Kafka and PostgreSQL).
"""

from collections import Counter as Tally
from collections.abc import Iterator, Sequence
from datetime import datetime

from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from backbone.metrics import query_rows

from .store import PendingRow, Placement

PUBLISHED = Counter(
    "outbox_records_published", "Outbox rows published to Kafka (delivery confirmed), per topic.", ["topic"]
)
PUBLISH_LATENCY = Histogram(
    "outbox_publish_latency_seconds",
    "Seconds from an outbox row's commit to Kafka's delivery report for its record.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)

# The oldest row by id: ids follow insertion, and min(id) is one index probe on a backlog of
# any size, where ordering by commit time would scan it.
BACKLOG = """
    SELECT count(*), extract(epoch FROM now() - (
        SELECT occurred_at FROM outbox WHERE id = (SELECT min(id) FROM outbox_pending)
    ))
    FROM outbox_pending
"""


def count_published(rows: Sequence[PendingRow], placements: Sequence[Placement], delivered: datetime) -> None:
    """Count a batch's confirmed rows: one counter step per topic, one latency per row."""
    if not placements:
        return
    by_id = {row.id: row for row in rows}
    topics: Tally[str] = Tally()
    for placement in placements:
        row = by_id[placement.row_id]
        topics[row.topic] += 1
        committed = row.committed_at or row.occurred_at  # no commit time: track_commit_timestamp off
        PUBLISH_LATENCY.observe(max(0.0, (delivered - committed).total_seconds()))
    for topic, count in topics.items():
        PUBLISHED.labels(topic).inc(count)


class OutboxBacklogCollector(Collector):
    """Rows waiting to be published and the age of the oldest, read from PostgreSQL per scrape."""

    def collect(self) -> Iterator[Metric]:
        rows = query_rows(BACKLOG)
        if not rows:
            return
        count, age = rows[0]
        yield GaugeMetricFamily(
            "outbox_rows_waiting",
            "Committed outbox rows not yet published to Kafka.",
            value=float(str(count)),
        )
        yield GaugeMetricFamily(
            "outbox_oldest_waiting_age_seconds",
            "Age of the oldest unpublished outbox row (0 when none waits).",
            value=float(str(age)) if age is not None else 0.0,
        )
