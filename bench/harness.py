"""The shared harness: results, modes, timing, percentiles, the table and the JSON file."""

import json
import logging
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("bench")

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Mode:
    """How much work each benchmark does; quick fits in a few minutes on 2 cores."""

    name: str
    relay_rows: int
    latency_seconds: float
    latency_rate: float
    consumer_events: int
    overhead_transactions: int
    e2e_low_rate: float
    e2e_low_seconds: float
    e2e_rate: float
    e2e_seconds: float
    e2e_target_rate: float  # the rate of the p99 target
    e2e_target_seconds: float
    e2e_saturation_seconds: float
    e2e_saturation_clients: int
    waiters: int
    waiters_load_seconds: float
    web_requests: int  # per endpoint, for the CPU per request
    web_baseline_rate: float  # the plain Django baseline's fixed rate (orders/s)
    web_baseline_seconds: float
    web_saturation_seconds: float
    web_saturation_clients: int


MODES: dict[str, Mode] = {
    "quick": Mode(
        name="quick",
        relay_rows=30_000,
        latency_seconds=10,
        latency_rate=200,
        consumer_events=20_000,
        overhead_transactions=400,
        e2e_low_rate=5,
        e2e_low_seconds=10,
        e2e_rate=20,
        e2e_seconds=15,
        e2e_target_rate=40,
        e2e_target_seconds=15,
        e2e_saturation_seconds=15,
        e2e_saturation_clients=16,
        waiters=1_000,
        waiters_load_seconds=10,
        web_requests=1_500,
        web_baseline_rate=20,
        web_baseline_seconds=10,
        web_saturation_seconds=10,
        web_saturation_clients=16,
    ),
    "full": Mode(
        name="full",
        relay_rows=100_000,
        latency_seconds=30,
        latency_rate=200,
        consumer_events=100_000,
        overhead_transactions=2_000,
        e2e_low_rate=5,
        e2e_low_seconds=30,
        e2e_rate=20,
        e2e_seconds=60,
        e2e_target_rate=40,
        e2e_target_seconds=60,
        e2e_saturation_seconds=45,
        e2e_saturation_clients=24,
        waiters=5_000,
        waiters_load_seconds=20,
        web_requests=5_000,
        web_baseline_rate=20,
        web_baseline_seconds=30,
        web_saturation_seconds=30,
        web_saturation_clients=16,
    ),
}


@dataclass
class Result:
    """One row of the table: a measured value, its same-run baseline and the target."""

    benchmark: str
    metric: str
    value: float | None
    unit: str = ""
    baseline: float | None = None
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def skipped(benchmark: str, reason: str) -> Result:
    """A row saying why a benchmark could not run (a missing piece is not a failed target)."""
    return Result(benchmark=benchmark, metric="skipped", value=None, note=reason)


def percentile(samples: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile (pct in 0..100) of unsorted samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(samples_seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds, with the sample count."""
    ms = [sample * 1000 for sample in samples_seconds]
    return {
        "count": len(ms),
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else math.nan,
    }


def wait_for(condition: Any, *, timeout: float, interval: float = 0.05, what: str = "condition") -> float:
    """Poll `condition()` until true; returns the perf_counter time it became true."""
    deadline = time.perf_counter() + timeout
    while True:
        if condition():
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def progress(message: str, *args: Any) -> None:
    log.info(message, *args)


# --- Machine --------------------------------------------------------------------------------


def machine_info(postgres_version: str, kafka_version: str) -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "postgresql": postgres_version,
        "kafka": kafka_version,
        "confluent_kafka": _confluent_versions(),
        "load_average_at_start": load_average(),
    }


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: other work on the machine skews every number."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return []


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _confluent_versions() -> str:
    import confluent_kafka

    return f"{confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]})"


# --- Output ---------------------------------------------------------------------------------

COLUMNS = ("benchmark", "metric", "value", "baseline", "ratio", "target", "met")


def _number(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def _met(result: Result) -> str:
    if result.met is None:
        return "-"
    return "yes" if result.met else "NO"


def table(results: Sequence[Result]) -> str:
    rows = [COLUMNS]
    for result in results:
        rows.append(
            (
                result.benchmark,
                result.metric if not result.note or result.metric != "skipped" else f"skipped: {result.note}",
                _number(result.value, result.unit),
                _number(result.baseline, result.unit),
                "-" if result.ratio is None else f"{result.ratio:.2f}",
                result.target or "-",
                _met(result),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def machine_line(machine: dict[str, Any]) -> str:
    return (
        f"{machine['cores']} cores, {machine['cpu_model']}, {machine['memory_gib']} GiB; "
        f"Python {machine['python']}; PostgreSQL {machine['postgresql']}; Kafka {machine['kafka']}; "
        f"confluent-kafka {machine['confluent_kafka']}; "
        f"load average {machine['load_average_at_start']} at start, "
        f"{machine.get('load_average_at_end')} at end"
    )


def write_json(mode: Mode, machine: dict[str, Any], results: Sequence[Result], extra: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"bench-{mode.name}-{stamp}.json"
    document = {
        "mode": asdict(mode),
        "finished_at": datetime.now(UTC).isoformat(),
        "machine": machine,
        "results": [asdict(result) for result in results],
        **extra,
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return path
