"""Consumer throughput: N events applied by the real runner (`manage.py consume bench`, one
process, inbox dedupe, the default batch size) to a simple view, against a bare
confluent-kafka consumer reading the same records.

The runner works in a Kafka namespace of its own (`<namespace>consumer.`), so it reads only
the benchmark's records. It is warmed up with one event first (start-up and the group join are
not timed); then the N records are produced and the clock runs until the inbox holds them all.
"""

import time
from collections.abc import Callable
from typing import Any

from bench.consumer_handlers import CREATE_VIEW
from bench.environment import connect
from bench.harness import Result, progress, skipped, wait_for
from bench.kafka_tools import consume_count, create_topic, produce_all
from bench.payloads import OutboxRow, order_rows
from bench.run import BenchContext

NAME = "consumer throughput"
TARGET_RATE = 5_000.0
TARGET_RATIO = 0.4
PARTITIONS = 3


def runner_available() -> bool:
    from django.conf import settings

    return (settings.BASE_DIR / "backbone" / "management" / "commands" / "consume.py").exists()


class Inbox:
    """Counts the events a consumer group handled, on a connection of its own."""

    def __init__(self, database_url: str, group: str) -> None:
        self._connection = connect(database_url, autocommit=True)
        self._group = group

    def handled(self) -> int:
        row = self._connection.execute(
            "SELECT count(*) FROM inbox WHERE consumer_group = %s", [self._group]
        ).fetchone()
        return int(row[0]) if row else 0

    def transactions(self) -> int:
        """How many transactions wrote the group's inbox rows: `handled_at` is now(), the
        start time of the transaction, so each distinct value is one batch."""
        row = self._connection.execute(
            "SELECT count(DISTINCT handled_at) FROM inbox WHERE consumer_group = %s", [self._group]
        ).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self._connection.close()


def run(context: BenchContext) -> list[Result]:
    if not runner_available():
        return [skipped(NAME, "backbone/management/commands/consume.py does not exist yet")]
    count = context.mode.consumer_events
    namespace = f"{context.namespace}consumer."
    topic = f"{namespace}orders"
    create_topic(topic, PARTITIONS)
    with connect(context.database_url, autocommit=True) as connection:
        connection.execute(CREATE_VIEW)

    rows = order_rows(count + 1, seed=23)
    records = [(row.key.encode(), row.payload.encode(), row.headers()) for row in rows]
    warmup, measured = records[:1], records[1:]

    inbox = Inbox(context.database_url, group=f"{namespace}bench")

    def handled(target: int) -> bool:
        context.processes.check_alive()  # a runner that died says why, at once
        return inbox.handled() >= target

    try:
        consumer = context.processes.manage(
            "consume-bench",
            "consume",
            "bench",
            "--handlers",
            "bench.consumer_handlers",
            extra_env={"KAFKA_NAMESPACE": namespace},
        )
        produce_all(topic, warmup)
        wait_for(lambda: handled(1), timeout=90, what="the runner's warm-up event")
        progress("runner: %d events (%d partitions) to the bench view, with the inbox", count, PARTITIONS)
        started = time.perf_counter()
        produce_all(topic, measured)
        # Every 0.1 s: counting a large inbox more often would take CPU from the runner measured.
        finished = wait_for(lambda: handled(count + 1), timeout=600, interval=0.1, what=f"{count} events")
        runner_seconds = finished - started
        context.processes.stop(consumer)
        batch = (count + 1) / max(inbox.transactions(), 1)
    finally:
        inbox.close()
    runner_rate = count / runner_seconds
    progress("runner: %.0f events/s (%.2fs), %.0f events per transaction", runner_rate, runner_seconds, batch)

    progress("baseline: bare consumer reading the same %d records", count + 1)
    baseline_seconds = consume_count(topic, count + 1)
    baseline_rate = (count + 1) / baseline_seconds
    progress("baseline: %.0f records/s (%.2fs)", baseline_rate, baseline_seconds)
    ratio = runner_rate / baseline_rate
    return [
        Result(
            NAME,
            f"events/s, 1 process ({count:,} events)",
            runner_rate,
            "/s",
            target=f">= {TARGET_RATE:,.0f}/s",
            met=runner_rate >= TARGET_RATE,
            note=f"{batch:.0f} events per database transaction on average",
            details={"runner_seconds": runner_seconds, "events_per_transaction": batch},
        ),
        Result(
            NAME,
            "runner vs bare consumer",
            runner_rate,
            "/s",
            baseline=baseline_rate,
            ratio=ratio,
            target=f">= {TARGET_RATIO:.0%} of bare consumer",
            met=ratio >= TARGET_RATIO,
            details={"baseline_seconds": baseline_seconds},
        ),
        *_handler_floors(rows[1:], runner_rate, baseline_rate),
    ]


def _handler_floors(rows: list[OutboxRow], runner_rate: float, bare_rate: float) -> list[Result]:
    """The handler alone, in-process: its SQL in transactions of the runner's batch size, with
    no Kafka, no decoding and no inbox; what the runner adds is the rest. The batch handler is
    the one the runner uses; the per-event one shows what one round trip per event costs."""
    from backbone.conf import backbone_settings
    from backbone.envelope import Envelope
    from bench.consumer_handlers import record_order, record_orders
    from orders.events import OrderRequested

    events = [
        (OrderRequested.model_validate_json(row.payload), Envelope.from_headers(row.headers()))
        for row in rows
    ]
    batch = backbone_settings.CONSUMER_BATCH_SIZE
    progress("handler alone: %d view upserts, %d per transaction, no Kafka", len(events), batch)
    batch_rate = _handler_rate(events, batch, record_orders)
    single_rate = _handler_rate(events, batch, lambda chunk: [record_order(*item) for item in chunk])
    progress("handler alone: batch %.0f events/s, per event %.0f events/s", batch_rate, single_rate)
    return [
        Result(
            NAME,
            "  batch handler SQL alone (no Kafka, no inbox)",
            batch_rate,
            "/s",
            baseline=bare_rate,
            ratio=batch_rate / bare_rate,
            note=(
                f"the batch handler alone reaches {batch_rate / bare_rate:.0%} of the bare consumer; the "
                f"runner adds {1e6 / runner_rate - 1e6 / batch_rate:.0f} us per event to the handler's "
                f"{1e6 / batch_rate:.0f} us"
            ),
            details={"handler_rate": batch_rate, "runner_rate": runner_rate},
        ),
        Result(
            NAME,
            "  per-event handler SQL alone (one upsert each)",
            single_rate,
            "/s",
            baseline=bare_rate,
            ratio=single_rate / bare_rate,
            note=f"one round trip per event: {1e6 / single_rate:.0f} us each",
            details={"handler_rate": single_rate},
        ),
    ]


def _handler_rate(
    events: list[tuple[Any, Any]], batch: int, apply: Callable[[list[tuple[Any, Any]]], object]
) -> float:
    """Events per second through `apply`, one transaction per `batch` events."""
    from django.db import transaction

    started = time.perf_counter()
    for at in range(0, len(events), batch):
        with transaction.atomic():
            apply(events[at : at + batch])
    return len(events) / (time.perf_counter() - started)
