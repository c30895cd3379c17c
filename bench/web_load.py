"""The client side of the web benchmark: N requests from a few concurrent clients, the server's
CPU they cost (from /proc), and the plain shop's orders at a fixed rate or back to back."""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from bench.environment import cpu_seconds, postgres_cpu_seconds

# One request of a measurement: the client and the request's number (to vary bodies or ids).
Request = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]

CONCURRENCY = 4
WARM_UP_REQUESTS = 60


@dataclass
class Spent:
    """What a batch of requests cost: server CPU (the web process group's) and PostgreSQL's."""

    requests: int
    seconds: float
    web_cpu_seconds: float
    postgres_cpu_seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # The server's CPU per second with no request, measured before: what each figure includes
    # of its own background work (worker heartbeats, pool upkeep), spread over the requests.
    idle_cpu_ms_per_second: float = 0.0

    @property
    def succeeded(self) -> int:
        return self.requests - len(self.errors)

    def web_ms(self) -> float:
        return 1000 * self.web_cpu_seconds / max(self.succeeded, 1)

    def postgres_ms(self) -> float:
        return 1000 * self.postgres_cpu_seconds / max(self.succeeded, 1)

    def describe_errors(self) -> str:
        if not self.errors:
            return ""
        return f"{len(self.errors)} of {self.requests} failed (first: {self.errors[0]})"


class Meter:
    """CPU of a server's process group (master and workers) and of the database's backends,
    between start() and stop()."""

    def __init__(self, server_pid: int, database: str) -> None:
        self._pid = server_pid
        self._database = database
        self._web = self._postgres = self._wall = 0.0
        self.idle_cpu_ms_per_second = 0.0

    async def measure_idle(self, seconds: float = 1.0) -> None:
        before = cpu_seconds(self._pid)
        await asyncio.sleep(seconds)
        self.idle_cpu_ms_per_second = 1000 * (cpu_seconds(self._pid) - before) / seconds

    def start(self) -> None:
        self._web, self._postgres = cpu_seconds(self._pid), postgres_cpu_seconds(self._database)
        self._wall = time.perf_counter()

    def stop(self, requests: int, latencies: list[float], errors: list[str]) -> Spent:
        return Spent(
            requests=requests,
            seconds=time.perf_counter() - self._wall,
            web_cpu_seconds=cpu_seconds(self._pid) - self._web,
            postgres_cpu_seconds=postgres_cpu_seconds(self._database) - self._postgres,
            latencies=latencies,
            errors=errors,
            idle_cpu_ms_per_second=self.idle_cpu_ms_per_second,
        )


async def cpu_per_request(
    client: httpx.AsyncClient, meter: Meter, request: Request, *, count: int, expect: int = 200
) -> Spent:
    """`count` requests from CONCURRENCY clients back to back, after a warm-up (imports, pools,
    connections) that is not counted."""
    await _concurrently(client, request, WARM_UP_REQUESTS, expect)
    meter.start()
    latencies, errors = await _concurrently(client, request, count, expect)
    return meter.stop(count, latencies, errors)


async def _concurrently(
    client: httpx.AsyncClient, request: Request, count: int, expect: int
) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    numbers = iter(range(count))

    async def one_client() -> None:
        for number in numbers:
            await _timed(client, request, number, expect, latencies, errors)

    await asyncio.gather(*(one_client() for _ in range(CONCURRENCY)))
    return latencies, errors


async def _timed(
    client: httpx.AsyncClient,
    request: Request,
    number: int,
    expect: int,
    latencies: list[float],
    errors: list[str],
) -> None:
    started = time.perf_counter()
    try:
        response = await request(client, number)
    except httpx.HTTPError as error:
        errors.append(f"{type(error).__name__}: {error}")
        return
    latencies.append(time.perf_counter() - started)
    if response.status_code != expect:
        errors.append(f"{response.status_code}: {response.text[:120]}")


async def at_rate(
    client: httpx.AsyncClient, meter: Meter, request: Request, *, rate: float, seconds: float, expect: int
) -> Spent:
    """Open loop: a request every 1/rate s, whatever the server does."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors: list[str] = []
    count = int(rate * seconds)
    meter.start()
    started, tasks = loop.time(), []
    for number in range(count):
        await asyncio.sleep(max(0.0, started + number / rate - loop.time()))
        tasks.append(asyncio.create_task(_timed(client, request, number, expect, latencies, errors)))
    await asyncio.gather(*tasks)
    return meter.stop(count, latencies, errors)


async def back_to_back(
    client: httpx.AsyncClient, meter: Meter, request: Request, *, clients: int, seconds: float, expect: int
) -> Spent:
    """Closed loop: `clients` clients, each sending its next request once the last is answered."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors: list[str] = []
    sent = 0
    meter.start()
    deadline = loop.time() + seconds

    async def one_client() -> None:
        nonlocal sent
        while loop.time() < deadline:
            sent += 1
            await _timed(client, request, sent, expect, latencies, errors)

    await asyncio.gather(*(one_client() for _ in range(clients)))
    return meter.stop(sent, latencies, errors)


def order_lines(skus: list[str], number: int) -> list[dict[str, object]]:
    """One or two lines of one or two units, as the end-to-end customers order; seeded by the
    request's number, so every run orders the same."""
    chooser = random.Random(number)
    return [
        {"sku": sku, "quantity": chooser.randint(1, 2)} for sku in chooser.sample(skus, chooser.randint(1, 2))
    ]
