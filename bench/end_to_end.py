"""End to end: HTTP clients place orders and long-poll for the outcome, with every process of
`make run` running (the Procfile's web, relay, four consumers and Celery worker), against the
bench database seeded by `manage.py seed_demo` and restocked through the staff API.

Two phases: a fixed offered rate (open loop: a new order every 1/rate s, whatever the shop
does) and saturation (closed loop: N clients, each placing its next order once the last one
is decided). Latency runs from sending the POST to receiving the CONFIRMED order. Baseline:
the POST alone (until its 202), measured on the same orders.
"""

import asyncio
import os
import random
import re
import socket
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from django.test import override_settings

from backbone.provisioning import ensure_topics
from bench.environment import connect, kafka_broker_cpu_seconds, machine_cpu, postgres_cpu_seconds
from bench.harness import Result, latency_summary, progress, skipped
from bench.run import BenchContext

NAME = "end to end"
TARGET_P99_MS = 300.0
FINAL_STATES = {"CONFIRMED", "REJECTED"}
RESTOCK = 1_000_000
# Beat only schedules dispatches of confirmed orders; the order path does not involve it.
SKIPPED_PROCESSES = {"beat"}
ORDER_DEADLINE = 60.0


@dataclass
class Outcome:
    state: str
    total_seconds: float
    post_seconds: float
    error: str = ""


def run(context: BenchContext) -> list[Result]:
    from django.conf import settings

    procfile = Path(settings.BASE_DIR, "Procfile")
    if not procfile.exists():
        return [skipped(NAME, "no Procfile yet (make run)")]
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    # Topics of their own: the other benchmarks leave records on `orders` that the shop's
    # consumers would otherwise work through first.
    namespace = f"{context.namespace}e2e."
    with override_settings(KAFKA_NAMESPACE=namespace):
        ensure_topics()
    tokens = _seed()
    environment = {
        "SHOP_BIND": f"127.0.0.1:{port}",
        "KAFKA_NAMESPACE": namespace,
        # A handful of customers place thousands of orders: the per-customer limit would stop them.
        "THROTTLE_ORDERS_RATE": "1000000/minute",
        "THROTTLE_LOGIN_RATE": "1000000/minute",
    }
    for name, command in _procfile(procfile).items():
        if name not in SKIPPED_PROCESSES:
            context.processes.start(name, ["bash", "-c", f"exec {command}"], extra_env=environment)
    return asyncio.run(_drive(context, base_url, tokens))


async def _drive(context: BenchContext, base_url: str, tokens: dict[str, str]) -> list[Result]:
    mode = context.mode
    # Idle connections are dropped before gunicorn's 2 s keep-alive ends, so a request never
    # races the server closing the connection it was sent on.
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200, keepalive_expiry=1.0)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        await _wait_healthy(client, context)
        skus = await _restock(client, tokens["staff"])
        shop = Shop(client, [tokens["alice"], tokens["bob"]], skus)
        await _warm_up(shop, context)
        results = []
        # A low rate first: what the chain takes when the machine has room to spare.
        for rate, seconds in ((mode.e2e_low_rate, mode.e2e_low_seconds), (mode.e2e_rate, mode.e2e_seconds)):
            progress("fixed rate: %.0f orders/s for %.0fs (open loop)", rate, seconds)
            phase = await _measure_phase(context, shop, _open_loop(shop, rate=rate, seconds=seconds))
            results.extend(_fixed_rate_results(rate, phase, target=rate == mode.e2e_rate))
        clients, seconds = mode.e2e_saturation_clients, mode.e2e_saturation_seconds
        progress("saturation: %d clients for %.0fs (closed loop)", clients, seconds)
        phase = await _measure_phase(context, shop, _closed_loop(shop, clients=clients, seconds=seconds))
        results.extend(_saturation_results(clients, phase))
    return results


@dataclass
class Phase:
    outcomes: list[Outcome]
    seconds: float
    cpu: dict[str, float]
    hops: dict[str, dict[str, float]]

    @property
    def confirmed(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.state == "CONFIRMED"]


async def _measure_phase(
    context: BenchContext, shop: "Shop", load: Coroutine[Any, Any, tuple[list[Outcome], float]]
) -> Phase:
    """Run one load phase; the CPU each process spent on it, and the hops of its events."""
    meter = CpuMeter(context, shop)
    started = datetime.now(UTC)
    outcomes, seconds = await load
    context.processes.check_alive()
    phase = Phase(
        outcomes=outcomes,
        seconds=seconds,
        cpu=meter.per_order(sum(1 for outcome in outcomes if outcome.state == "CONFIRMED")),
        hops=_hop_latencies(context.database_url, since=started, until=datetime.now(UTC)),
    )
    progress("  hops (p50/p99 ms): %s", _describe_hops(phase.hops))
    progress("  CPU per confirmed order: %s", _describe_cpu(phase.cpu))
    return phase


class CpuMeter:
    """CPU seconds each process (and PostgreSQL's bench backends, the broker, this load
    client, the whole machine) spends during a phase, to divide by the orders it confirmed."""

    def __init__(self, context: BenchContext, shop: "Shop") -> None:
        self._context = context
        self._shop = shop
        self._database = context.database_url.rsplit("/", 1)[-1]
        self._started = self._snapshot()

    def _snapshot(self) -> dict[str, float]:
        own = os.times()
        busy, total = machine_cpu()
        return {
            "db commits": _database_commits(self._context.database_url),
            "http requests": self._shop.requests,
            **self._context.processes.cpu_snapshot(),
            "postgres": postgres_cpu_seconds(self._database),
            "kafka broker": kafka_broker_cpu_seconds(),
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


def _database_commits(database_url: str) -> float:
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


def _hop_latencies(database_url: str, *, since: datetime, until: datetime) -> dict[str, dict[str, float]]:
    """p50/p99 of every hop of the events written during a phase."""
    with connect(database_url, autocommit=True) as connection:
        rows = connection.execute(_HOP_PERCENTILES, {"since": since, "until": until}).fetchall()
    return {
        # Consumer groups carry the namespace prefix; the context is the last part.
        hop.rsplit(".", 1)[-1]: {"events": count, "p50_ms": 1000 * p50, "p99_ms": 1000 * p99}
        for hop, count, p50, p99 in rows
    }


def _describe_hops(hops: dict[str, dict[str, float]]) -> str:
    return ", ".join(f"{hop} {stats['p50_ms']:.0f}/{stats['p99_ms']:.0f}" for hop, stats in hops.items())


NOT_CPU = ("machine busy %", "db commits", "http requests")


def _describe_cpu(cpu: dict[str, float]) -> str:
    parts = sorted(((name, ms) for name, ms in cpu.items() if name not in NOT_CPU), key=lambda p: -p[1])
    total = sum(ms for name, ms in parts if name != "kafka broker")
    listed = ", ".join(f"{name} {ms:.1f}" for name, ms in parts)
    return (
        f"{total:.0f} ms in all ({listed}); machine {cpu['machine busy %']:.0f}% busy; "
        f"{cpu['db commits']:.1f} database commits and {cpu['http requests']:.1f} HTTP requests per order"
    )


class Shop:
    """The customer side of the API: place an order, wait for its outcome."""

    def __init__(self, client: httpx.AsyncClient, tokens: list[str], skus: list[str]) -> None:
        self._client = client
        self._tokens = tokens
        self._skus = skus
        self._random = random.Random(5)
        self.requests = 0

    async def order(self) -> Outcome:
        headers = {"Authorization": f"Token {self._random.choice(self._tokens)}"}
        lines = [
            {"sku": sku, "quantity": self._random.randint(1, 2)}
            for sku in self._random.sample(self._skus, self._random.randint(1, 2))
        ]
        started = time.perf_counter()
        try:
            self.requests += 1
            response = await self._client.post(
                "/api/orders/", json={"lines": lines, "payment_token": "tok_bench"}, headers=headers
            )
            posted = time.perf_counter() - started
            if response.status_code != 202:
                return Outcome("ERROR", 0, posted, f"POST {response.status_code}: {response.text[:120]}")
            order_id = response.json()["id"]
            state = response.json()["state"]
            while state not in FINAL_STATES and time.perf_counter() - started < ORDER_DEADLINE:
                self.requests += 1
                response = await self._client.get(
                    f"/api/orders/{order_id}/", params={"wait": 10}, headers=headers
                )
                if response.status_code != 200:
                    return Outcome("ERROR", 0, posted, f"GET {response.status_code}: {response.text[:120]}")
                state = response.json()["state"]
        except httpx.HTTPError as error:
            return Outcome("ERROR", 0, 0, f"{type(error).__name__}: {error}")
        return Outcome(state, time.perf_counter() - started, posted)


async def _open_loop(shop: Shop, *, rate: float, seconds: float) -> tuple[list[Outcome], float]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    tasks = []
    for number in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, started + number / rate - loop.time()))
        tasks.append(asyncio.create_task(shop.order()))
    outcomes = await asyncio.gather(*tasks)
    return list(outcomes), loop.time() - started


async def _closed_loop(shop: Shop, *, clients: int, seconds: float) -> tuple[list[Outcome], float]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + seconds
    outcomes: list[Outcome] = []

    async def client() -> None:
        while loop.time() < deadline:
            outcomes.append(await shop.order())

    await asyncio.gather(*(client() for _ in range(clients)))
    return outcomes, loop.time() - started


def _fixed_rate_results(rate: float, phase: Phase, *, target: bool) -> list[Result]:
    confirmed = phase.confirmed
    latency = latency_summary([outcome.total_seconds for outcome in confirmed])
    post = latency_summary([outcome.post_seconds for outcome in confirmed])
    failures = _failures(phase.outcomes)
    progress(
        "  %d/%d confirmed, p50 %.0f ms, p99 %.0f ms",
        len(confirmed),
        len(phase.outcomes),
        latency["p50_ms"],
        latency["p99_ms"],
    )
    label = f"@{rate:.0f}/s"
    return [
        Result(
            NAME,
            f"confirmed orders/s {label} offered",
            len(confirmed) / phase.seconds,
            "/s",
            note=failures,
            details={
                "orders": len(phase.outcomes),
                "confirmed": len(confirmed),
                "cpu": phase.cpu,
                "hops": phase.hops,
            },
        ),
        Result(NAME, f"POST->CONFIRMED p50 {label}", latency["p50_ms"], "ms", baseline=post["p50_ms"]),
        Result(NAME, f"POST->CONFIRMED p95 {label}", latency["p95_ms"], "ms", baseline=post["p95_ms"]),
        Result(
            NAME,
            f"POST->CONFIRMED p99 {label}",
            latency["p99_ms"],
            "ms",
            baseline=post["p99_ms"],
            ratio=latency["p99_ms"] / post["p99_ms"],
            target=f"<= {TARGET_P99_MS:.0f} ms" if target else "",
            met=(latency["p99_ms"] <= TARGET_P99_MS and not failures) if target else None,
            details={"order": latency, "post_only": post},
        ),
    ]


def _saturation_results(clients: int, phase: Phase) -> list[Result]:
    confirmed = phase.confirmed
    latency = latency_summary([outcome.total_seconds for outcome in confirmed])
    progress("  saturation: %.1f orders/s", len(confirmed) / phase.seconds)
    return [
        Result(
            NAME,
            f"saturation orders/s ({clients} clients)",
            len(confirmed) / phase.seconds,
            "/s",
            note=_failures(phase.outcomes),
            details={"latency": latency, "orders": len(phase.outcomes), "cpu": phase.cpu, "hops": phase.hops},
        ),
        Result(NAME, "saturation POST->CONFIRMED p99", latency["p99_ms"], "ms"),
    ]


def _failures(outcomes: list[Outcome]) -> str:
    failed = [outcome for outcome in outcomes if outcome.state != "CONFIRMED"]
    if not failed:
        return ""
    return f"{len(failed)} of {len(outcomes)} not confirmed (first: {failed[0].state} {failed[0].error})"


# --- Set-up -----------------------------------------------------------------------------------


def _procfile(path: Path) -> dict[str, str]:
    """`name: command` lines, as honcho reads them (comments and blank lines skipped)."""
    processes = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_-]+):\s*(.+)$", line)
        if match and not line.lstrip().startswith("#"):
            processes[match[1]] = match[2]
    return processes


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _seed() -> dict[str, str]:
    """`manage.py seed_demo` into the bench database; the demo users' API tokens."""
    from io import StringIO

    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    call_command("seed_demo", stdout=StringIO())
    return {token.user.username: token.key for token in Token.objects.select_related("user")}


async def _wait_healthy(client: httpx.AsyncClient, context: BenchContext) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        context.processes.check_alive()
        try:
            if (await client.get("/health/")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError("the web process did not answer /health/ within 60s")


async def _restock(client: httpx.AsyncClient, staff_token: str) -> list[str]:
    """Plenty of stock for every product but the scarce demo one, through the staff API; waits
    until Orders' view (the catalog) shows it, so no order is turned away by a stale view."""
    from shop.management.commands.seed_demo import PRODUCTS, SCARCE_SKU

    headers = {"Authorization": f"Token {staff_token}"}
    skus = [product.sku for product in PRODUCTS if product.sku != SCARCE_SKU]
    for sku in skus:
        response = await client.post(
            f"/api/stock/{sku}/receipts/", json={"quantity": RESTOCK}, headers=headers
        )
        response.raise_for_status()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        catalog = (await client.get("/api/products/", params={"page_size": 500}, headers=headers)).json()
        available = {item["sku"]: item["available"] for item in _items(catalog)}
        if all(available.get(sku, 0) >= RESTOCK for sku in skus):
            return skus
        await asyncio.sleep(0.2)
    raise TimeoutError("Orders' view of stock did not show the restock within 60s")


def _items(catalog: Any) -> list[dict[str, Any]]:
    return catalog["results"] if isinstance(catalog, dict) else catalog


async def _warm_up(shop: Shop, context: BenchContext) -> None:
    """Orders until three confirm in a row within 2 s each: every consumer has joined its
    group and warmed up. A busy machine may never get there; then the run goes on anyway."""
    deadline = time.monotonic() + 120
    prompt = 0
    while prompt < 3:
        if time.monotonic() > deadline:
            progress("warm-up: orders are still slow to confirm after 120s; measuring anyway")
            return
        context.processes.check_alive()
        outcome = await shop.order()
        if outcome.state == "ERROR":
            raise RuntimeError(f"warm-up order failed: {outcome.error}")
        prompt = prompt + 1 if outcome.state == "CONFIRMED" and outcome.total_seconds < 2 else 0
