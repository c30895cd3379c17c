"""What an end-to-end phase cost: CPU per confirmed order by process, and the latency of each
hop of the event chain, read from the database's own timestamps."""

import os
from datetime import datetime

from bench.e2e_load import Shop
from bench.environment import _proc_cpu, connect, machine_cpu, postgres_cpu_seconds
from bench.harness import Result
from bench.run import BenchContext

TARGET_CPU_MS = 30.0  # per confirmed order at 20/s, the shop's processes and PostgreSQL
TARGET_COMMITS = 12.0  # database commits per confirmed order at 20/s


class CpuMeter:
    """CPU seconds each process (and PostgreSQL's bench backends, the broker, this load
    client, the whole machine) spends during a phase, to divide by the orders it confirmed."""

    def __init__(self, context: BenchContext, shop: Shop) -> None:
        self._context = context
        self._shop = shop
        self._database = context.database_url.rsplit("/", 1)[-1]
        self._started = self._snapshot()

    def _snapshot(self) -> dict[str, float]:
        own = os.times()
        busy, total = machine_cpu()
        return {
            "db commits": database_commits(self._context.database_url),
            "http requests": self._shop.requests,
            **self._context.processes.cpu_snapshot(),
            "postgres": postgres_cpu_seconds(self._database),
            "kafka broker": shared_broker_cpu_seconds(),
            "load client": own.user + own.system,
            "machine busy": busy,
            "machine total": total,
        }

    def per_order(self, orders: int) -> dict[str, float]:
        """Milliseconds of CPU per order by process; `machine busy %` over the phase."""
        ended = self._snapshot()
        spent = {name: ended[name] - self._started.get(name, 0.0) for name in ended}
        wall = spent.pop("machine total")
        busy = spent.pop("machine busy")
        counts = {name: spent.pop(name) / max(orders, 1) for name in ("db commits", "http requests")}
        per_order = {name: 1000 * seconds / max(orders, 1) for name, seconds in spent.items()}
        per_order["machine busy %"] = 100 * busy / wall if wall > 0 else 0.0
        return {**per_order, **counts}


def shared_broker_cpu_seconds() -> float:
    """CPU of the broker `make services` started, in whichever checkout it runs from (several
    checkouts share one); disposable brokers of tests have other server.properties files."""
    marker = "/.services/kafka/server.properties "
    found = _proc_cpu(lambda stat, cmdline: " kafka.Kafka " in cmdline and marker in cmdline)
    return sum(cpu for _pgrp, cpu in found)


def database_commits(database_url: str) -> float:
    """Transactions committed in the bench database so far (PostgreSQL's statistics)."""
    with connect(database_url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return float(row[0]) if row else 0.0


# Each hop of the event chain, from the database's own records: the relay's (outbox row
# written -> published) and each consumer group's (published -> its batch transaction began).
_HOPS = """
    SELECT 'relay' AS hop, EXTRACT(EPOCH FROM published_at - occurred_at) AS seconds
    FROM outbox WHERE occurred_at BETWEEN %(since)s AND %(until)s AND published_at IS NOT NULL
    UNION ALL
    SELECT inbox.consumer_group, EXTRACT(EPOCH FROM inbox.handled_at - outbox.published_at)
    FROM inbox JOIN outbox ON outbox.event_id = inbox.event_id
    WHERE outbox.occurred_at BETWEEN %(since)s AND %(until)s
"""
_HOP_PERCENTILES = f"""
    SELECT hop, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds),
           percentile_cont(0.99) WITHIN GROUP (ORDER BY seconds)
    FROM ({_HOPS}) AS hops GROUP BY hop ORDER BY hop
"""


def hop_latencies(database_url: str, *, since: datetime, until: datetime) -> dict[str, dict[str, float]]:
    """p50/p99 of every hop of the events written during a phase."""
    with connect(database_url, autocommit=True) as connection:
        rows = connection.execute(_HOP_PERCENTILES, {"since": since, "until": until}).fetchall()
    return {
        # Consumer groups carry the namespace prefix; the context is the last part.
        hop.rsplit(".", 1)[-1]: {"events": count, "p50_ms": 1000 * p50, "p99_ms": 1000 * p99}
        for hop, count, p50, p99 in rows
    }


def describe_hops(hops: dict[str, dict[str, float]]) -> str:
    return ", ".join(f"{hop} {stats['p50_ms']:.0f}/{stats['p99_ms']:.0f}" for hop, stats in hops.items())


NOT_CPU = ("machine busy %", "db commits", "http requests")
# Not the shop's own cost: the broker is shared with whatever else runs on the machine, and the
# load client is the benchmark itself.
NOT_IN_TOTAL = ("kafka broker", "load client")


def shop_cpu_ms(cpu: dict[str, float]) -> float:
    """CPU ms per confirmed order of the shop's processes and its PostgreSQL backends."""
    return sum(ms for name, ms in cpu.items() if name not in NOT_CPU and name not in NOT_IN_TOTAL)


def cpu_results(benchmark: str, label: str, cpu: dict[str, float]) -> list[Result]:
    """One row per process (largest first), then the total against the target."""
    processes = sorted(
        ((name, ms) for name, ms in cpu.items() if name not in NOT_CPU), key=lambda part: -part[1]
    )
    rows = [
        Result(benchmark, f"  CPU ms per confirmed order {label}: {name}{_aside(name)}", ms, "ms")
        for name, ms in processes
    ]
    total = shop_cpu_ms(cpu)
    rows.append(
        Result(
            benchmark,
            f"CPU ms per confirmed order {label}: total",
            total,
            "ms",
            target=f"<= {TARGET_CPU_MS:.0f} ms",
            met=total <= TARGET_CPU_MS,
            note=f"machine {cpu['machine busy %']:.0f}% busy; {cpu['db commits']:.1f} database commits "
            f"and {cpu['http requests']:.1f} HTTP requests per confirmed order",
            details={"cpu": cpu},
        )
    )
    commits = cpu["db commits"]
    rows.append(
        Result(
            benchmark,
            f"database commits per confirmed order {label}",
            commits,
            "",
            target=f"<= {TARGET_COMMITS:.0f}",
            met=commits <= TARGET_COMMITS,
            note="PostgreSQL's xact_commit for the bench database over the phase: every process, "
            "plus connections made and autovacuum",
        )
    )
    return rows


def _aside(name: str) -> str:
    return " (not in total)" if name in NOT_IN_TOTAL else ""


def describe_cpu(cpu: dict[str, float]) -> str:
    parts = sorted(((name, ms) for name, ms in cpu.items() if name not in NOT_CPU), key=lambda p: -p[1])
    total = shop_cpu_ms(cpu)
    listed = ", ".join(f"{name} {ms:.1f}" for name, ms in parts)
    return (
        f"{total:.0f} ms for the shop ({listed}); machine {cpu['machine busy %']:.0f}% busy; "
        f"{cpu['db commits']:.1f} database commits and {cpu['http requests']:.1f} HTTP requests per order"
    )
