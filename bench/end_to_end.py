"""End to end: HTTP clients place orders and long-poll for the outcome, with every process of
`make run` running (the Procfile's web, relay, four consumers and Celery worker), against the
bench database seeded by `manage.py seed_demo` and restocked through the staff API.

Phases at fixed offered rates (open loop: a new order every 1/rate s, whatever the shop does;
5/s, 20/s, then the 40/s of the p99 target) and saturation (closed loop: N clients, each placing
its next order once the last one is decided). Latency runs from sending the POST to receiving
the CONFIRMED order. Baseline: the POST alone (until its 202), measured on the same orders.
Each phase measures the CPU every process spent per confirmed order; the 20/s phase, a rate
the shop sustains with room to spare, reports it as rows, one per process. A second 20/s phase
sends `Prefer: wait=10` with each POST (one request per order when decided within 10 s) and
reports its total and commits.
"""

import asyncio
import re
import socket
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from backbone.provisioning import ensure_topics
from backbone.testing.settings import override_backbone
from bench.e2e_load import Outcome, Shop, closed_loop, open_loop, warm_up
from bench.e2e_meters import CpuMeter, cpu_results, describe_cpu, describe_hops, hop_latencies
from bench.harness import Result, latency_summary, progress, skipped
from bench.run import BenchContext

NAME = "end to end"
TARGET_P99_MS = 300.0
TARGET_SATURATION = 60.0  # confirmed orders/s
RESTOCK = 1_000_000
# Beat only schedules dispatches of confirmed orders; the order path does not involve it.
SKIPPED_PROCESSES = {"beat"}


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
    with override_backbone(KAFKA_NAMESPACE=namespace):
        ensure_topics()
    tokens = _seed()
    environment = {
        "SHOP_BIND": f"127.0.0.1:{port}",
        "KAFKA_NAMESPACE": namespace,
        # A handful of customers place thousands of orders: the per-customer limit would stop them.
        "THROTTLE_ORDERS_RATE": "1000000/minute",
        "THROTTLE_LOGIN_RATE": "1000000/minute",
        # ... and so would the cap on concurrent long-polls of one customer.
        "ORDER_WAITS_PER_CUSTOMER": "1000000",
        # Not the directory of a shop `make run` may be running: gunicorn empties it at start.
        "PROMETHEUS_MULTIPROC_DIR": str(context.processes.logs_dir / "prometheus-web"),
    }
    for name, command in _procfile(procfile).items():
        if name not in SKIPPED_PROCESSES:
            # No `exec`: a line may start with variable assignments, which `exec` would take for
            # the command; bash runs a lone command in its own process anyway.
            context.processes.start(name, ["bash", "-c", _own_ports(command)], extra_env=environment)
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
        await warm_up(shop, context)
        results = []
        # A low rate first: what the chain takes when the machine has room to spare.
        rates = (
            (mode.e2e_low_rate, mode.e2e_low_seconds),
            (mode.e2e_rate, mode.e2e_seconds),
            (mode.e2e_target_rate, mode.e2e_target_seconds),
        )
        cpu_rows = []
        for rate, seconds in rates:
            progress("fixed rate: %.0f orders/s for %.0fs (open loop)", rate, seconds)
            phase = await _measure_phase(context, shop, open_loop(shop, rate=rate, seconds=seconds))
            results.extend(_fixed_rate_results(rate, phase, target=rate == mode.e2e_target_rate))
            if rate == mode.e2e_rate:
                cpu_rows = cpu_results(NAME, f"@{rate:.0f}/s", phase.cpu)
                cpu_rows += await _one_request_per_order(context, client, tokens, skus, rate, seconds)
        clients, seconds = mode.e2e_saturation_clients, mode.e2e_saturation_seconds
        progress("saturation: %d clients for %.0fs (closed loop)", clients, seconds)
        phase = await _measure_phase(context, shop, closed_loop(shop, clients=clients, seconds=seconds))
        results.extend(_saturation_results(clients, phase))
    return results + cpu_rows


async def _one_request_per_order(
    context: BenchContext,
    client: httpx.AsyncClient,
    tokens: dict[str, str],
    skus: list[str],
    rate: float,
    seconds: float,
) -> list[Result]:
    """The same rate with `Prefer: wait=10` on each POST: a client that wants one request per
    order. Only its total and commits: the per-process rows are the plain phase's."""
    progress("fixed rate: %.0f orders/s for %.0fs with Prefer: wait (open loop)", rate, seconds)
    shop = Shop(client, [tokens["alice"], tokens["bob"]], skus, prefer_wait=True)
    phase = await _measure_phase(context, shop, open_loop(shop, rate=rate, seconds=seconds))
    *_, total, commits = cpu_results(NAME, f"@{rate:.0f}/s, Prefer: wait", phase.cpu)
    failures = _failures(phase.outcomes)
    confirmed = Result(
        NAME,
        f"confirmed orders/s @{rate:.0f}/s offered, Prefer: wait",
        len(phase.confirmed) / phase.seconds,
        "/s",
        note=failures,
    )
    return [confirmed, total, commits]


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
    context: BenchContext, shop: Shop, load: Coroutine[Any, Any, tuple[list[Outcome], float]]
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
        hops=hop_latencies(context.database_url, since=started, until=datetime.now(UTC)),
    )
    progress("  hops (p50/p99 ms): %s", describe_hops(phase.hops))
    progress("  CPU per confirmed order: %s", describe_cpu(phase.cpu))
    return phase


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
    rate = len(confirmed) / phase.seconds
    failures = _failures(phase.outcomes)
    return [
        Result(
            NAME,
            f"saturation orders/s ({clients} clients)",
            rate,
            "/s",
            target=f">= {TARGET_SATURATION:.0f}/s",
            met=rate >= TARGET_SATURATION and not failures,
            note=failures,
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


def _own_ports(command: str) -> str:
    """The command with a free metrics port: a running shop, or another bench run, holds the
    Procfile's."""
    return re.sub(r"--metrics-port \d+", lambda _: f"--metrics-port {_free_port()}", command)


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
