"""Relay latency: from an outbox commit to the record being readable by a consumer, at a low
steady rate, with the real `manage.py relay` running as its own process. Shows whether the
relay is woken on commit (LISTEN/NOTIFY) rather than by its safety-net poll.

Baseline: a bare producer sending the same kind of records at the same rate, each flushed at
once, from `produce()` to arrival: Kafka's own floor on this machine. The reader is a separate process, so
the writer's GIL never delays a reading; both sides stamp with the same wall clock.
"""

import multiprocessing
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from confluent_kafka import Producer

from backbone.kafka import consumer_config, physical_topic
from bench.environment import connect
from bench.harness import Result, latency_summary, progress, skipped, wait_for
from bench.kafka_tools import create_topic, listen_for_arrivals, partition_count, relay_settings
from bench.payloads import copy_into_outbox, order_rows
from bench.relay_throughput import Backlog, relay_available
from bench.run import BenchContext

NAME = "relay latency"
TARGET_P99_MS = 50.0
WARMUP_SECONDS = 1.0

# Sends event number i; returns its ce_id and the wall-clock time the clock starts for it.
Send = Callable[[int], tuple[str, float]]


def run(context: BenchContext) -> list[Result]:
    if not relay_available():
        return [skipped(NAME, "outbox/management/commands/relay.py does not exist yet")]
    rate, seconds = context.mode.latency_rate, context.mode.latency_seconds
    topic = physical_topic("orders")

    baseline_topic = f"{context.namespace}bench.latency-baseline"
    create_topic(baseline_topic, partition_count(topic))
    progress("baseline: bare producer -> consumer at %.0f records/s for %.0fs", rate, seconds)
    producer = Producer(relay_settings())
    baseline = _measure(baseline_topic, _bare_sender(producer, baseline_topic), rate=rate, seconds=seconds)
    producer.flush(10)
    progress("baseline: p50 %.1f ms, p99 %.1f ms", baseline["p50_ms"], baseline["p99_ms"])

    relay = context.processes.manage("relay", "relay")
    emit_one = _emit_sender()
    _wait_for_idle_relay(context, emit_one)
    results = []
    for scenario in SCENARIOS:
        _prepare(context, scenario)
        progress(
            "relay (%s): emit() in its own transaction at %.0f events/s for %.0fs", scenario, rate, seconds
        )
        measured = _measure(topic, emit_one, rate=rate, seconds=seconds, check=context.processes.check_alive)
        progress("relay (%s): p50 %.1f ms, p99 %.1f ms", scenario, measured["p50_ms"], measured["p99_ms"])
        results.extend(_rows(scenario, measured, baseline, rate))
    context.processes.stop(relay)
    return results


# The outbox as a quiet shop has it (vacuumed), and right after a burst (the rows just
# published leave dead entries in the partial index of unpublished rows until VACUUM runs).
VACUUMED = "vacuumed outbox"
AFTER_BURST = "right after a burst"
SCENARIOS = (VACUUMED, AFTER_BURST)


def _prepare(context: BenchContext, scenario: str) -> None:
    with connect(context.database_url, autocommit=True) as connection:
        if scenario == VACUUMED:
            connection.execute("VACUUM ANALYZE outbox")
            return
    count = context.mode.relay_rows
    progress("burst: %d rows through the relay, then measuring at once", count)
    backlog = Backlog(context.database_url)
    try:
        with connect(context.database_url) as connection:
            copy_into_outbox(connection, order_rows(count, seed=41))
        wait_for(backlog.empty, timeout=300, interval=0.05, what="the burst to be published")
    finally:
        backlog.close()


def _rows(scenario: str, measured: dict[str, Any], baseline: dict[str, Any], rate: float) -> list[Result]:
    label = f"{scenario}, {rate:.0f} ev/s, {measured['count']} events"
    return [
        Result(
            NAME,
            f"commit->readable p50 ({label})",
            measured["p50_ms"],
            "ms",
            baseline=baseline["p50_ms"],
            ratio=measured["p50_ms"] / baseline["p50_ms"],
            details={"scenario": scenario, "relay": measured, "bare_producer": baseline},
        ),
        Result(
            NAME,
            f"commit->readable p99 ({scenario})",
            measured["p99_ms"],
            "ms",
            baseline=baseline["p99_ms"],
            ratio=measured["p99_ms"] / baseline["p99_ms"],
            target=f"<= {TARGET_P99_MS:.0f} ms",
            met=measured["p99_ms"] <= TARGET_P99_MS,
        ),
    ]


def _measure(
    topic: str, send: Send, *, rate: float, seconds: float, check: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Send at `rate` for WARMUP_SECONDS + `seconds`; latencies of the events after warm-up."""
    spawn = multiprocessing.get_context("spawn")
    ready, stop, results = spawn.Event(), spawn.Event(), spawn.Queue()
    config = consumer_config(f"bench-latency-{uuid.uuid4().hex[:8]}", **{"fetch.wait.max.ms": 100})
    listener = spawn.Process(target=listen_for_arrivals, args=(config, topic, ready, stop, results))
    listener.start()
    try:
        if not ready.wait(60):
            raise TimeoutError("the latency reader did not start within 60s")
        warmup = int(rate * WARMUP_SECONDS)
        sent = _paced(send, count=warmup + int(rate * seconds), rate=rate, check=check)
        time.sleep(2.0)  # stragglers: a record later than this counts as lost, and fails the run
        stop.set()
        arrivals: dict[str, float] = results.get(timeout=30)
    finally:
        stop.set()
        listener.join(timeout=30)
        if listener.is_alive():
            listener.kill()
    measured = list(sent.items())[warmup:]
    lost = [event_id for event_id, _ in measured if event_id not in arrivals]
    if lost:
        raise RuntimeError(f"{len(lost)} of {len(measured)} events did not arrive within 2s (e.g. {lost[0]})")
    latencies = [arrivals[event_id] - sent_at for event_id, sent_at in measured]
    summary: dict[str, Any] = latency_summary(latencies)
    # When the slowest events were sent (seconds into the measurement): a cluster at the start
    # is a one-off stall, a spread is steady jitter.
    first = measured[0][1]
    slowest = sorted(zip(latencies, measured, strict=True), key=lambda pair: -pair[0])[:10]
    summary["slowest_ms_at_s"] = [[round(1000 * ms), round(at - first, 2)] for ms, (_, at) in slowest]
    return summary


def _paced(send: Send, *, count: int, rate: float, check: Callable[[], None] | None) -> dict[str, float]:
    """Call `send` `count` times at a steady `rate`; {ce_id: wall-clock time it was sent}."""
    sent: dict[str, float] = {}
    interval = 1.0 / rate
    started = time.perf_counter()
    for number in range(count):
        delay = started + number * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        event_id, sent_at = send(number)
        sent[event_id] = sent_at
        if check is not None and number % int(rate) == 0:
            check()
    return sent


def _events(count: int = 512) -> list[Any]:
    from orders.events import OrderLine, OrderRequested

    lines = tuple(
        OrderLine(sku=f"SKU-{index:05d}", quantity=1 + index % 3, unit_price=Decimal("19.99"))
        for index in range(10)
    )
    return [
        OrderRequested(order_id=uuid.uuid4(), customer_id=7, lines=lines, total=Decimal("399.80"))
        for _ in range(count)
    ]


def _emit_sender() -> Send:
    from django.db import transaction

    from outbox.emit import emit

    events = _events()

    def send(number: int) -> str:
        with transaction.atomic():
            envelope = emit(events[number % len(events)])
        return envelope.id, time.time()  # the clock starts when the transaction has committed

    return send


def _bare_sender(producer: Producer, topic: str) -> Send:
    events = [(str(event.order_id).encode(), event.to_json()) for event in _events()]

    def send(number: int) -> str:
        event_id = str(uuid.uuid4())
        key, value = events[number % len(events)]
        sent_at = time.time()
        producer.produce(topic, value, key, headers=[("ce_id", event_id.encode())])
        producer.flush()  # sent now, not after linger.ms: the floor a relay could reach
        return event_id, sent_at

    return send


def _wait_for_idle_relay(context: BenchContext, send: Send) -> None:
    """One event through the relay proves it is up, connected and waiting for commits."""
    backlog = Backlog(context.database_url)

    def published() -> bool:
        context.processes.check_alive()  # a relay that died says why, at once
        return backlog.empty()

    try:
        send(0)
        wait_for(published, timeout=60, interval=0.05, what="the relay's first event")
    finally:
        backlog.close()
