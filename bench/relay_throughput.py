"""Relay throughput: a backlog of N outbox rows drained to Kafka by the real `manage.py relay`,
against a bare producer sending the same records from memory with the same settings.

The relay runs as its own process, as in production, and is warmed up with one row first (so
its start-up is not timed). The rows are COPYed in one transaction; the clock runs from that
commit until every row is marked published and every record is on the topic.
"""

import os
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from backbone.kafka import physical_topic
from bench.environment import Process, connect, cpu_seconds, postgres_cpu_seconds
from bench.harness import Result, progress, skipped, wait_for
from bench.kafka_tools import Record, Watermarks, create_topic, partition_count, produce_all
from bench.payloads import OutboxRow, copy_into_outbox, order_rows
from bench.run import BenchContext

NAME = "relay throughput"
TARGET_RATIO = 0.5
# BENCH_RELAY_SHARDS=N runs N relay processes with `--shards N` (docs/relay.md), each leading
# one shard of the backlog; 1 (the default) runs the single relay of the Procfile.
SHARDS = int(os.environ.get("BENCH_RELAY_SHARDS", "1"))


def relay_available() -> bool:
    return (settings.BASE_DIR / "outbox" / "management" / "commands" / "relay.py").exists()


class Backlog:
    """Tells whether unpublished outbox rows are left, on one autocommit connection of its own."""

    def __init__(self, database_url: str) -> None:
        self._connection = connect(database_url, autocommit=True)

    def empty(self) -> bool:
        # One probe of the pending list (kept by the outbox's triggers in the marking
        # transaction), not a count of the outbox: asked every 20 ms, a count would cost
        # PostgreSQL more CPU than the relay's own reads, on the two cores they share.
        row = self._connection.execute("SELECT NOT EXISTS (SELECT FROM outbox_pending)").fetchone()
        return bool(row and row[0])

    def close(self) -> None:
        self._connection.close()


def run(context: BenchContext) -> list[Result]:
    if not relay_available():
        return [skipped(NAME, "outbox/management/commands/relay.py does not exist yet")]
    count = context.mode.relay_rows
    progress("generating %d outbox rows (OrderRequested, 0.5-1 KB)", count)
    rows = order_rows(count)
    payload_bytes = sum(len(row.payload) for row in rows) / len(rows)
    records = [(row.key.encode(), row.payload.encode(), row.headers()) for row in rows]

    topic = physical_topic("orders")
    baseline_topic = f"{context.namespace}bench.producer-baseline"
    create_topic(baseline_topic, partition_count(topic))

    # Baseline before and after the relay; their mean is the reference, so a load change on
    # the machine during the run weighs on both sides alike.
    baseline_runs = [_baseline(baseline_topic, records)]
    drain = _drain_with_relay(context, rows, topic)
    relay_seconds = drain.seconds
    relay_rate = count / relay_seconds
    progress("relay: %.0f rows/s (%.2fs)", relay_rate, relay_seconds)
    baseline_runs.append(_baseline(baseline_topic, records))
    baseline_seconds = sum(run.seconds for run in baseline_runs) / len(baseline_runs)
    baseline_cpu = sum(run.process_cpu for run in baseline_runs) / len(baseline_runs)
    baseline_rate = count / baseline_seconds
    ratio = relay_rate / baseline_rate
    return [
        Result(
            NAME,
            f"rows/s ({count:,} rows, {payload_bytes:.0f} B avg)",
            relay_rate,
            "/s",
            baseline=baseline_rate,
            ratio=ratio,
            target=f">= {TARGET_RATIO:.0%} of bare producer",
            met=ratio >= TARGET_RATIO,
            details={
                "relay_seconds": relay_seconds,
                "baseline_seconds": [run.seconds for run in baseline_runs],
            },
        ),
        *_cpu_results(drain, count, baseline_cpu),
        *_sql_floor_results(context, count, baseline_rate),
    ]


@dataclass(frozen=True)
class Timed:
    """A drain or a baseline run: its wall time, and the CPU it cost."""

    seconds: float
    process_cpu: float  # of the relay process (with its threads), or of the bare producer's
    postgres_cpu: float = 0.0  # of the bench database's PostgreSQL backends


def _cpu_results(drain: Timed, count: int, baseline_cpu: float) -> list[Result]:
    """CPU per row: on a shared two-core machine, rows/s follow the neighbours' load, the CPU
    spent per row much less so (it is what bounds throughput once the cores are busy)."""
    relay_us, bare_us, postgres_us = (
        1e6 * cpu / count for cpu in (drain.process_cpu, baseline_cpu, drain.postgres_cpu)
    )
    return [
        Result(
            NAME, "  relay process CPU per row", relay_us, "us", baseline=bare_us, ratio=relay_us / bare_us
        ),
        Result(NAME, "  PostgreSQL CPU per row (reads, marks)", postgres_us, "us"),
    ]


def _sql_floor_results(context: BenchContext, count: int, baseline_rate: float) -> list[Result]:
    """How fast the relay's own SQL goes for the same backlog, with no Kafka at all: a relay
    cannot beat the statements it must run for every row (read it, mark it published)."""
    try:
        floor = _sql_floor(context, count)
    except (ImportError, AttributeError, TypeError) as error:  # the relay's store API moved on
        return [skipped(NAME, f"SQL floor not measured: {error}")]
    read_rate, mark_rate = count / floor["read_seconds"], count / floor["mark_seconds"]
    return [
        Result(
            NAME,
            "  relay SQL alone: read rows/s",
            read_rate,
            "/s",
            baseline=baseline_rate,
            ratio=read_rate / baseline_rate,
            details=floor,
        ),
        Result(
            NAME,
            "  relay SQL alone: mark rows/s",
            mark_rate,
            "/s",
            baseline=baseline_rate,
            ratio=mark_rate / baseline_rate,
        ),
    ]


def _sql_floor(context: BenchContext, count: int) -> dict[str, float]:
    """Run the relay store's statements over a fresh backlog of `count` rows, sequentially."""
    from datetime import UTC, datetime

    from outbox.relay import RelayOptions
    from outbox.store import OutboxStore, Placement

    options = RelayOptions()
    progress("relay SQL alone: read and mark %d rows with the relay's statements, no Kafka", count)
    with connect(context.database_url) as connection:
        copy_into_outbox(connection, order_rows(count, seed=31))
    with connect(context.database_url, autocommit=True) as connection:
        store = OutboxStore(connection)
        read = mark = 0.0
        while True:
            started = time.perf_counter()
            ids = store.pending_ids(options.window_size)
            batches = [ids[at : at + options.batch_size] for at in range(0, len(ids), options.batch_size)]
            rows_per_batch = [store.fetch_rows(batch) for batch in batches]
            read += time.perf_counter() - started
            if not ids:
                break
            started = time.perf_counter()
            for number, rows in enumerate(rows_per_batch):
                placements = [
                    Placement(row.id, 0, number * options.batch_size + i) for i, row in enumerate(rows)
                ]
                store.mark_published(placements, published_at=datetime.now(UTC))
            mark += time.perf_counter() - started
    return {"read_seconds": read, "mark_seconds": mark}


def _baseline(topic: str, records: list[Record]) -> Timed:
    progress("baseline: bare producer, %d records from memory", len(records))
    cpu = time.process_time()  # this process does nothing else meanwhile
    seconds = produce_all(topic, records)
    cpu = time.process_time() - cpu
    progress("baseline: %.0f records/s (%.2fs)", len(records) / seconds, seconds)
    return Timed(seconds, cpu)


def _drain_with_relay(context: BenchContext, rows: list[OutboxRow], topic: str) -> Timed:
    watermarks = Watermarks(topic)
    backlog = Backlog(context.database_url)

    def all_on_kafka() -> bool:
        context.processes.check_alive()  # a crashed relay fails the run at once, with its log
        return watermarks.total() >= expected

    try:
        relays = _start_relays(context)
        # Warm-up: one row through the relay proves it is up, connected and idle.
        before = watermarks.total()
        with connect(context.database_url) as connection:
            copy_into_outbox(connection, order_rows(1, seed=99))
        wait_for(backlog.empty, timeout=60, interval=0.1, what="the relay's first row")
        wait_for(lambda: watermarks.total() > before, timeout=30, what="the warm-up record")
        for relay in relays[1:]:  # the first relay won every shard and hands the others over
            context.processes.wait_for_output(relay, r"is now the leader", timeout=60)
        expected = watermarks.total() + len(rows)

        progress("relay: COPY %d rows into the outbox, then wait for the backlog to drain", len(rows))
        # The COPY's connection ends before the second reading, so only the relay's backends
        # (and the backlog probe's) are counted.
        database = urlsplit(context.database_url).path.lstrip("/")
        relay_cpu, postgres_cpu = _cpu_of(relays), postgres_cpu_seconds(database)
        with connect(context.database_url) as connection:
            copy_into_outbox(connection, rows)
            connection.commit()
            committed = time.perf_counter()
        on_kafka = wait_for(all_on_kafka, timeout=600, interval=0.02, what=f"{len(rows)} records on {topic}")
        drained = wait_for(backlog.empty, timeout=120, interval=0.02, what="empty backlog")
        relay_cpu = _cpu_of(relays) - relay_cpu
        postgres_cpu = postgres_cpu_seconds(database) - postgres_cpu
        for relay in relays:
            context.processes.stop(relay)
        return Timed(max(on_kafka, drained) - committed, relay_cpu, postgres_cpu)
    finally:
        watermarks.close()
        backlog.close()


def _start_relays(context: BenchContext) -> list[Process]:
    if SHARDS == 1:
        return [context.processes.manage("relay", "relay")]
    progress("relay: %d processes with --shards %d", SHARDS, SHARDS)
    relays = []
    for number in range(SHARDS):
        # At INFO, which says who leads what (a handful of lines, none per row).
        relay = context.processes.manage(
            f"relay-{number}", "relay", "--shards", str(SHARDS), extra_env={"LOG_LEVEL": "INFO"}
        )
        relays.append(relay)
        # Each joins once the one before leads, so the first wins every shard and hands over.
        context.processes.wait_for_output(relays[-1], r"is now the leader|standing by", timeout=60)
    return relays


def _cpu_of(relays: list[Process]) -> float:
    return sum(cpu_seconds(relay.popen.pid) for relay in relays)
