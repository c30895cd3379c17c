"""Waiters: N customers long-poll their pending orders while other clients use the API.

The web process runs as the Procfile starts it (gunicorn with uvicorn workers), alone: no
relay or consumer. The bench places N pending orders (1,000 quick, 5,000 full) for a hundred
customers through the Orders service, then

1. measures the other clients' calls (GET /api/products/, GET an order without `wait`, POST an
   order, at a steady rate) with nobody waiting: the same-run baseline;
2. opens N concurrent `?wait=30` long-polls and, once they are held, measures the same calls
   again, and the web processes' memory (RSS of the master and workers, and their threads);
3. decides the orders in batches through the service the Orders consumer calls (its commit
   rings the order's doorbell) and measures, per waiter, the delay from the decision's commit
   to the answer.
"""

import asyncio
import random
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx

from bench.end_to_end import _free_port, _procfile, _wait_healthy
from bench.harness import Result, latency_summary, progress, skipped
from bench.run import BenchContext

NAME = "waiters"
WAIT_SECONDS = 300
CUSTOMERS = 100
SKU = "BENCH-WAIT"
OTHER_CALLS_PER_SECOND = 30
# Decisions come as the Orders consumer makes them: in batches, at a pace above the shop's
# end-to-end target (60 confirmed orders/s), not all at once.
DECISION_BATCH = 10
DECISIONS_PER_SECOND = 100
TARGET_OTHER_P99_MS = 100.0
TARGET_WAKE_UP_MS = 100.0


def run(context: BenchContext) -> list[Result]:
    from django.conf import settings

    procfile = Path(settings.BASE_DIR, "Procfile")
    if not procfile.exists():
        return [skipped(NAME, "no Procfile yet (make run)")]
    _raise_open_files_limit()
    waiters = context.mode.waiters
    port = _free_port()
    environment = {
        "SHOP_BIND": f"127.0.0.1:{port}",
        # A hundred customers hold all the waits, and the other clients place orders freely.
        "ORDER_WAITS_PER_CUSTOMER": str(waiters),
        "THROTTLE_ORDERS_RATE": "1000000/minute",
        # Opening thousands of waits takes a while on two busy cores: the waits must outlast
        # that and the load phase, so the server allows what they ask (WAIT_SECONDS).
        "ORDER_WAIT_MAX_SECONDS": str(WAIT_SECONDS),
        # Not the directory of a shop `make run` may be running: gunicorn empties it at start.
        "PROMETHEUS_MULTIPROC_DIR": str(context.processes.logs_dir / "prometheus-web"),
    }
    progress("placing %d pending orders for %d customers", waiters, CUSTOMERS)
    customers, orders = _pending_orders(waiters)
    # No `exec`: the line starts with a variable assignment (bash runs a lone command in place).
    web = context.processes.start("web", ["bash", "-c", _procfile(procfile)["web"]], environment)
    return asyncio.run(_drive(context, f"http://127.0.0.1:{port}", web.popen.pid, customers, orders))


@dataclass
class Waiter:
    order_id: str
    token: str
    decided: float = 0.0
    answered: float = 0.0
    state: str = ""
    error: str = ""


@dataclass
class Calls:
    """The other clients' calls of one phase: their latencies and failures."""

    seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def _drive(
    context: BenchContext, base_url: str, web_pid: int, customers: list[str], orders: list[Waiter]
) -> list[Result]:
    waiters = len(orders)
    limits = httpx.Limits(max_connections=waiters + 50, max_keepalive_connections=0)
    # The server closes a connection idle for 2 s (gunicorn's keepalive): the other clients
    # must drop theirs sooner, or a call sent as the server closes fails with a ReadError.
    kept_alive = httpx.Limits(keepalive_expiry=1.0)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=60, limits=kept_alive) as others,
        httpx.AsyncClient(base_url=base_url, timeout=WAIT_SECONDS + 30, limits=limits) as waiting,
    ):
        await _wait_healthy(others, context)
        call = _other_call(others, customers, [order.order_id for order in orders])
        await _steady(call, seconds=3)  # warm-up: imports, pools, connections
        seconds = context.mode.waiters_load_seconds
        progress("other calls for %.0fs at %d/s with nobody waiting", seconds, OTHER_CALLS_PER_SECOND)
        idle_rss, idle_threads = _memory(web_pid)
        baseline = await _steady(call, seconds=seconds)

        progress("opening %d long-polls (?wait=%d)", waiters, WAIT_SECONDS)
        held = [asyncio.create_task(_wait(waiting, waiter)) for waiter in orders]
        opened, holding = await _until_held(held)
        progress("other calls for %.0fs at %d/s while %d wait", seconds, OTHER_CALLS_PER_SECOND, waiters)
        loaded = await _steady(call, seconds=seconds)
        waiting_rss, waiting_threads = _memory(web_pid)
        early = sum(task.done() for task in held)

        progress(
            "deciding the %d orders, %d/s in batches of %d", waiters, DECISIONS_PER_SECOND, DECISION_BATCH
        )
        await asyncio.to_thread(_decide, orders)
        await asyncio.gather(*held)
    context.processes.check_alive()
    memory = {"idle": (idle_rss, idle_threads), "waiting": (waiting_rss, waiting_threads)}
    return _results(waiters, baseline, loaded, orders, memory, early, (opened, holding))


def _raise_open_files_limit() -> None:
    """Thousands of held connections need thousands of descriptors in the bench process too."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _pending_orders(count: int) -> tuple[list[str], list[Waiter]]:
    """`count` REQUESTED orders spread over CUSTOMERS customers; their API tokens."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from rest_framework.authtoken.models import Token

    from orders import services

    services.apply_stock_level(
        sku=SKU, name="Bench waiter", price=Decimal("1.00"), available=10_000_000, version=1
    )
    users = [get_user_model().objects.create_user(f"waiter-{n}") for n in range(CUSTOMERS)]
    tokens = [Token.objects.create(user=user).key for user in users]
    orders = []
    for n in range(count):
        user, token = users[n % CUSTOMERS], tokens[n % CUSTOMERS]
        placed = services.place_order(
            customer=user, lines=[services.LineRequest(sku=SKU, quantity=1)], payment_token="tok_bench"
        )
        orders.append(Waiter(order_id=str(placed.order.id), token=token))
    connection.close()
    return tokens, orders


def _other_call(
    client: httpx.AsyncClient, tokens: list[str], order_ids: list[str]
) -> Callable[[], Awaitable[httpx.Response]]:
    """One of the other clients' calls, in turn: the catalog, an order, a new order."""
    chooser = random.Random(7)
    kinds = ["products", "order", "place"]
    turn = {"n": 0}

    def call() -> Awaitable[httpx.Response]:
        kind = kinds[turn["n"] % len(kinds)]
        turn["n"] += 1
        # Order n belongs to customer n % CUSTOMERS (see _pending_orders).
        n = chooser.randrange(len(order_ids))
        headers = {"Authorization": f"Token {tokens[n % len(tokens)]}"}
        if kind == "products":
            return client.get("/api/products/", headers=headers)
        if kind == "order":
            return client.get(f"/api/orders/{order_ids[n]}/", headers=headers)
        body = {"lines": [{"sku": SKU, "quantity": 1}], "payment_token": "tok_bench"}
        return client.post("/api/orders/", json=body, headers=headers)

    return call


async def _steady(call: Callable[[], Awaitable[httpx.Response]], *, seconds: float) -> Calls:
    """Calls at OTHER_CALLS_PER_SECOND (open loop: one every 1/rate s, whatever the answers do)."""
    calls = Calls()

    async def timed() -> None:
        started = time.perf_counter()
        try:
            response = await call()
            if response.status_code >= 400:
                calls.errors.append(f"{response.status_code}: {response.text[:100]}")
        except httpx.HTTPError as error:
            calls.errors.append(repr(error))
        calls.seconds.append(time.perf_counter() - started)

    started, tasks = time.perf_counter(), []
    for n in range(int(seconds * OTHER_CALLS_PER_SECOND)):
        await asyncio.sleep(max(0.0, started + n / OTHER_CALLS_PER_SECOND - time.perf_counter()))
        tasks.append(asyncio.create_task(timed()))
    await asyncio.gather(*tasks)
    return calls


async def _wait(client: httpx.AsyncClient, waiter: Waiter) -> None:
    try:
        response = await client.get(
            f"/api/orders/{waiter.order_id}/",
            params={"wait": WAIT_SECONDS},
            headers={"Authorization": f"Token {waiter.token}"},
        )
        waiter.answered = time.monotonic()
        if response.status_code != 200:
            waiter.error = f"{response.status_code}: {response.text[:100]}"
        else:
            waiter.state = response.json()["state"]
    except httpx.HTTPError as error:
        waiter.answered, waiter.error = time.monotonic(), repr(error)


async def _until_held(held: list[asyncio.Task[None]]) -> tuple[float, int]:
    """Until the web process holds every wait, counted in its own ledger (the customers' wait
    slots in Redis, taken after the first read), or until that count stops growing for 10 s (a
    wait whose slot could not be taken, the cap failing open, still waits uncounted); the
    seconds that took and the count."""
    started, deadline, shown = time.monotonic(), time.monotonic() + 120, time.monotonic()
    last, stable_since = -1, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - stable_since < 10:
        await asyncio.sleep(0.5)
        count = await asyncio.to_thread(_held_waits)
        if count != last:
            last, stable_since = count, time.monotonic()
        if time.monotonic() - shown >= 5:
            progress("  %d of %d waits held", count, len(held))
            shown = time.monotonic()
        if count >= len(held):
            await asyncio.sleep(1.0)  # the last ones finish their re-read
            progress("  all held after %.1fs", time.monotonic() - started)
            return time.monotonic() - started, count
        if any(task.done() for task in held):
            break  # answered before any decision: counted as errors
    count = await asyncio.to_thread(_held_waits)
    progress("  not every wait is held (%d of %d)", count, len(held))
    return time.monotonic() - started, count


def _held_waits() -> int:
    import redis
    from django.conf import settings

    from orders.wait_slots import key

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return sum(int(client.zcard(name)) for name in client.scan_iter(match=key("*"), count=1000))
    finally:
        client.close()


def _decide(orders: list[Waiter]) -> None:
    """Reject the orders as the Orders consumer would (its commit rings the doorbell), in
    batches at DECISIONS_PER_SECOND, noting when each decision committed."""
    from django.db import connection

    from orders.models import RejectionReason
    from orders.services import reject_order

    started = time.monotonic()
    for start in range(0, len(orders), DECISION_BATCH):
        time.sleep(max(0.0, started + start / DECISIONS_PER_SECOND - time.monotonic()))
        for waiter in orders[start : start + DECISION_BATCH]:
            reject_order(order_id=waiter.order_id, reason=RejectionReason.OUT_OF_STOCK)
            waiter.decided = time.monotonic()
    connection.close()


# --- The web processes, from /proc ---------------------------------------------------------


def _group(pid: int) -> list[int]:
    """The processes of the web's process group (gunicorn's master and its workers)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pid:  # field 5 of stat, the process group
            members.append(int(stat.parent.name))
    return members


def _memory(pid: int) -> tuple[float, int]:
    """RSS in MiB and threads of the web's processes together."""
    rss_kib, threads = 0, 0
    for member in _group(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss_kib += int(line.split()[1])
            elif line.startswith("Threads:"):
                threads += int(line.split()[1])
    return rss_kib / 1024, threads


# --- Results -------------------------------------------------------------------------------


def _results(
    waiters: int,
    baseline: Calls,
    loaded: Calls,
    orders: list[Waiter],
    memory: dict[str, tuple[float, int]],
    early: int,
    held: tuple[float, int],
) -> list[Result]:
    idle, busy = latency_summary(baseline.seconds), latency_summary(loaded.seconds)
    woken = [o for o in orders if not o.error and o.state == "REJECTED" and o.decided]
    wake = latency_summary([max(0.0, o.answered - o.decided) for o in woken])
    failed = [o.error or o.state or "no answer" for o in orders if o not in woken]
    errors = len(failed) + len(loaded.errors) + len(baseline.errors)
    progress(
        "  other calls p99 %.0f ms (%.0f ms idle); wake-up p99 %.0f ms, max %.0f ms; errors %d",
        busy["p99_ms"],
        idle["p99_ms"],
        wake["p99_ms"],
        wake["max_ms"],
        errors,
    )
    label = f"({waiters} waiting)"
    note = "; ".join(
        part
        for part in (
            f"{len(failed)} waiters without a decided answer (first: {failed[0]})" if failed else "",
            f"{early} answered before the decision" if early else "",
            f"other calls failed: {(loaded.errors + baseline.errors)[0]}" if errors - len(failed) else "",
        )
        if part
    )
    (idle_rss, idle_threads), (busy_rss, busy_threads) = memory["idle"], memory["waiting"]
    return [
        Result(NAME, f"other calls p50 {label}", busy["p50_ms"], "ms", baseline=idle["p50_ms"]),
        Result(
            NAME,
            f"other calls p99 {label}",
            busy["p99_ms"],
            "ms",
            baseline=idle["p99_ms"],
            ratio=busy["p99_ms"] / idle["p99_ms"],
            target=f"<= {TARGET_OTHER_P99_MS:.0f} ms",
            met=busy["p99_ms"] <= TARGET_OTHER_P99_MS,
            note=f"{held[1]} of {waiters} waits held {held[0]:.1f}s after they were sent",
            details={"waiting": busy, "nobody_waiting": idle, "held_after_seconds": held[0], "held": held[1]},
        ),
        Result(NAME, "wake-up after decision p50", wake["p50_ms"], "ms"),
        Result(NAME, "wake-up after decision p99", wake["p99_ms"], "ms"),
        Result(
            NAME,
            "wake-up after decision max",
            wake["max_ms"],
            "ms",
            target=f"<= {TARGET_WAKE_UP_MS:.0f} ms",
            met=wake["max_ms"] <= TARGET_WAKE_UP_MS,
            details=wake,
        ),
        Result(NAME, "errors", errors, "", target="0", met=errors == 0, note=note),
        Result(
            NAME,
            f"web RSS {label}",
            busy_rss,
            "MiB",
            baseline=idle_rss,
            ratio=busy_rss / idle_rss if idle_rss else None,
            note=f"threads: {busy_threads} waiting, {idle_threads} idle",
            details={"threads_waiting": busy_threads, "threads_idle": idle_threads},
        ),
    ]
