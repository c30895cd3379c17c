"""The customer side of the end-to-end benchmark: orders placed through the API at a fixed
offered rate (open loop) or by N clients back to back (closed loop), each followed by long
polls until it is decided."""

import asyncio
import random
import time
from dataclasses import dataclass

import httpx

from bench.harness import progress
from bench.run import BenchContext

FINAL_STATES = {"CONFIRMED", "REJECTED"}
ORDER_DEADLINE = 60.0


@dataclass
class Outcome:
    state: str
    total_seconds: float
    post_seconds: float
    error: str = ""


class Shop:
    """The customer side of the API: place an order, wait for its outcome."""

    def __init__(
        self, client: httpx.AsyncClient, tokens: list[str], skus: list[str], *, prefer_wait: bool = False
    ) -> None:
        self._client = client
        # `Prefer: wait=10` on the POST: one request per order when it is decided within 10 s.
        self._post_headers = {"Prefer": "wait=10"} if prefer_wait else {}
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
                "/api/orders/",
                json={"lines": lines, "payment_token": "tok_bench"},
                headers=headers | self._post_headers,
            )
            posted = time.perf_counter() - started
            if response.status_code not in (200, 202):
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


async def open_loop(shop: Shop, *, rate: float, seconds: float) -> tuple[list[Outcome], float]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    tasks = []
    for number in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, started + number / rate - loop.time()))
        tasks.append(asyncio.create_task(shop.order()))
    outcomes = await asyncio.gather(*tasks)
    return list(outcomes), loop.time() - started


async def closed_loop(shop: Shop, *, clients: int, seconds: float) -> tuple[list[Outcome], float]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + seconds
    outcomes: list[Outcome] = []

    async def client() -> None:
        while loop.time() < deadline:
            outcomes.append(await shop.order())

    await asyncio.gather(*(client() for _ in range(clients)))
    return outcomes, loop.time() - started


async def warm_up(shop: Shop, context: BenchContext) -> None:
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
