"""The relay's Prometheus metrics: what waits in the outbox, what was published, how fast; and
the whole backbone's database collectors, which the web's `GET /metrics` and the relay's port
report (the outbox sits above the backbone, so it can name both).

Counted per batch, not per record: the published counter moves once per topic and batch, and
the publish latency histogram (seconds from a row's commit to the delivery report of its batch)
takes a batch's latencies at once, sorted, a bisect per bucket and one lock per batch, where
prometheus_client's Histogram takes a lock per observation.
"""

import math
import threading
from bisect import bisect_right
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from operator import attrgetter

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.metrics_core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from backbone.metrics import DeadLetterCollector, query_rows, scrape

from .store import PendingRow, Placement

# How prometheus_client writes a bucket's `le` ("0.005", "1.0", "+Inf").
_le: Callable[[float], str] = floatToGoString

PUBLISHED = Counter(
    "outbox_records_published", "Outbox rows published to Kafka (delivery confirmed), per topic.", ["topic"]
)

# 1 while this process holds shard N's lock and publishes it, 0 while it stands by: summed
# over the relays of a database, each shard should read exactly 1.
LEADER = Gauge("outbox_relay_leader", "1 when this relay process leads shard N, else 0.", ["shard"])


class BatchHistogram(Collector):
    """A Prometheus histogram that takes many observations at once (the same exposition as
    prometheus_client's Histogram: cumulative buckets with `le`, `_count`, `_sum`)."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self._name = name
        self._documentation = documentation
        self._bounds = [*sorted(buckets), math.inf]
        self._counts = [0] * len(self._bounds)  # cumulative: observations <= each bound
        self._sum = 0.0
        self._lock = threading.Lock()
        REGISTRY.register(self)

    def observe_all(self, values: Iterable[float]) -> None:
        ordered = sorted(values)
        below = [bisect_right(ordered, bound) for bound in self._bounds]
        total = math.fsum(ordered)
        with self._lock:
            self._counts = [count + more for count, more in zip(self._counts, below, strict=True)]
            self._sum += total

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        buckets = [(_le(bound), count) for bound, count in zip(self._bounds, counts, strict=True)]
        yield HistogramMetricFamily(self._name, self._documentation, buckets=buckets, sum_value=total)


PUBLISH_LATENCY = BatchHistogram(
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
    """Count a batch's confirmed rows: one counter step per topic, the latencies at once."""
    if not placements:
        return
    confirmed = rows if len(placements) == len(rows) else _confirmed(rows, placements)
    for topic, count in Tally(map(_topic, confirmed)).items():
        PUBLISHED.labels(topic).inc(count)
    now = delivered.timestamp()
    PUBLISH_LATENCY.observe_all([max(0.0, now - committed) for committed in map(_committed_at, confirmed)])


_topic = attrgetter("topic")
_committed_at = attrgetter("committed_at")


def _confirmed(rows: Sequence[PendingRow], placements: Sequence[Placement]) -> list[PendingRow]:
    ids = {placement.row_id for placement in placements}
    return [row for row in rows if row.id in ids]


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


def database_collectors() -> list[Collector]:
    """What PostgreSQL holds for the whole backbone, read per scrape: dead letters and parked
    records of every consumer group, and the outbox's backlog."""
    return [DeadLetterCollector(), OutboxBacklogCollector()]


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """`GET /metrics` of the web process: every worker's values, and the database collectors."""
    return scrape(database_collectors())
