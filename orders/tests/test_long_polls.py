"""Long-polls on the real web process (gunicorn + uvicorn workers, over HTTP): a held wait costs
no thread, a decision wakes its waiter at once, one customer cannot hold more than their share,
and Redis going away makes waits answer, never hang or fail.

Orders are decided in this process through the same service the Orders consumer calls, whose
commit rings the doorbell in Redis; no relay or consumer runs here.
"""

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from rest_framework.authtoken.models import Token

from backbone.conf import backbone_settings
from backbone.testing import database_url, free_port, wait_for
from backbone.testing.processes import terminate
from orders import wakeups
from orders.models import Order, OrderState, RejectionReason
from orders.services import reject_order
from orders.tests.factories import make_user, place, stock_level
from orders.tests.test_redis_outage import DisposableRedis, VanishingPath
from orders.wakeups import channel

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

CAP = 20  # ORDER_WAITS_PER_CUSTOMER of the web process


class Web:
    """The web process as the Procfile starts it, on the test database."""

    def __init__(self, log: Path, workers: int = 2, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {
            **os.environ,
            "DATABASE_URL": database_url(connection.settings_dict),
            "KAFKA_NAMESPACE": backbone_settings.KAFKA_NAMESPACE,
            "ORDER_WAITS_PER_CUSTOMER": str(CAP),
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        argv = [
            sys.executable, "-m", "gunicorn",
            "-c", "config/gunicorn_config.py", "config.asgi:application",
            "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers),
            "--timeout", "60",
        ]  # fmt: skip
        self.log = log
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                argv, cwd=settings.BASE_DIR, env=environment, stdout=output, stderr=subprocess.STDOUT
            )
        try:
            wait_for(self._answers, timeout=60, interval=0.3, what="the web process to answer")
        except BaseException:
            self.stop()
            raise

    def _answers(self) -> bool:
        assert self.process.poll() is None, self.log.read_text()
        try:
            return httpx.get(f"{self.url}/health/", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def worker_threads(self) -> int:
        """How many threads the worker processes run now, from /proc."""
        workers = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return sum(len(list(Path(f"/proc/{pid}/task").iterdir())) for pid in workers)

    def stop(self) -> None:
        terminate(self.process, grace=20)


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    server = Web(tmp_path / "web.log")
    yield server
    server.stop()
    assert "Traceback" not in server.log.read_text(), server.log.read_text()


def customer(name: str) -> dict[str, str]:
    """The Authorization header of a new customer."""
    token = Token.objects.create(user=make_user(name))
    return {"Authorization": f"Token {token.key}"}


def pending_orders(name: str, count: int) -> tuple[dict[str, str], list[Order]]:
    headers = customer(name)
    user = Token.objects.get(key=headers["Authorization"].split()[1]).user
    return headers, [place(user, ("KB-1", 1)) for _ in range(count)]


def reject(order: Order) -> float:
    """Decide the order as the Orders consumer would; the time its commit rang the doorbell."""
    reject_order(order_id=order.id, reason=RejectionReason.OUT_OF_STOCK)
    return time.monotonic()


async def wait_for_outcome(
    client: httpx.AsyncClient, base: str, order: Order, headers: dict[str, str], wait: float = 20
) -> tuple[httpx.Response, float]:
    response = await client.get(f"{base}/api/orders/{order.id}/?wait={wait}", headers=headers)
    return response, time.monotonic()


def run(coroutine):
    return asyncio.run(coroutine)


async def in_thread(function):
    """Database work from the async scenario, in a thread that closes its connection after."""

    def closing():
        try:
            return function()
        finally:
            connection.close()

    return await asyncio.to_thread(closing)


@pytest.fixture
def catalog() -> None:
    stock_level("KB-1", available=100_000)


def test_hundreds_of_held_waits_leave_the_web_process_free_and_are_all_woken(web: Web, catalog) -> None:
    waiters = [pending_orders(f"waiter-{n}", 15) for n in range(20)]  # 300 waits, 15 per customer
    orders = [(headers, order) for headers, placed in waiters for order in placed]

    async def scenario() -> tuple[list[float], list[tuple[httpx.Response, float]], float]:
        limits = httpx.Limits(max_connections=len(orders) + 10, max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits, timeout=40) as client:
            held = [asyncio.create_task(wait_for_outcome(client, web.url, o, h)) for h, o in orders]
            await asyncio.sleep(3)  # every wait is in (a thread server would have no thread left)
            assert not any(task.done() for task in held)
            # A held wait holds no thread: not one of the middleware chain, nor of the request
            # (a thread server, or a sync middleware, holds one per wait: over 300 here).
            for _ in range(30):  # on a busy machine the last waits take a while to come in
                threads = web.worker_threads()
                if threads < 60:
                    break
                await asyncio.sleep(0.5)
            assert threads < 60, f"{threads} threads in the workers for {len(orders)} held waits"
            assert not any(task.done() for task in held)
            latencies = []
            for _ in range(5):
                started = time.monotonic()
                response = await client.get(f"{web.url}/api/products/")
                latencies.append(time.monotonic() - started)
                assert response.status_code == 200
            decided = await in_thread(lambda: [reject(order) for _, order in orders][-1])
            return latencies, await asyncio.gather(*held), decided

    latencies, answers, last_decision = run(scenario())

    assert max(latencies) < 1.0, latencies
    assert [response.status_code for response, _ in answers] == [200] * len(orders)
    assert {response.json()["state"] for response, _ in answers} == {OrderState.REJECTED}
    assert max(answered for _, answered in answers) - last_decision < 2.0  # woken, not timed out


def test_waits_starting_together_take_turns_at_a_small_database_pool(tmp_path: Path, catalog) -> None:
    # Two connections per worker for 200 waits and the other requests: none may wait past the
    # pool's timeout for a connection (a 500).
    web = Web(tmp_path / "web.log", DATABASE_POOL_MAX_SIZE="2")
    waiters = [pending_orders(f"crowd-{n}", 10) for n in range(20)]
    orders = [(headers, order) for headers, placed in waiters for order in placed]

    async def scenario() -> tuple[list[int], list[tuple[httpx.Response, float]]]:
        limits = httpx.Limits(max_connections=len(orders) + 10, max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            held = [asyncio.create_task(wait_for_outcome(client, web.url, o, h, wait=5)) for h, o in orders]
            others = [(await client.get(f"{web.url}/api/products/")).status_code for _ in range(5)]
            return others, await asyncio.gather(*held)

    try:
        others, answers = run(scenario())
    finally:
        web.stop()
    assert others == [200] * 5
    assert [response.status_code for response, _ in answers] == [200] * len(orders)
    assert "PoolTimeout" not in web.log.read_text()


def test_a_waiter_is_answered_as_soon_as_the_decision_commits(web: Web, catalog) -> None:
    headers, (order,) = pending_orders("alice", 1)

    async def scenario() -> tuple[httpx.Response, float, float, float]:
        async with httpx.AsyncClient(timeout=40) as client:
            started = time.monotonic()
            waiting = asyncio.create_task(wait_for_outcome(client, web.url, order, headers))
            await asyncio.sleep(1.0)
            decided = await in_thread(lambda: reject(order))
            response, answered = await waiting
            return response, started, decided, answered

    response, started, decided, answered = run(scenario())

    assert response.status_code == 200
    assert response.json()["state"] == OrderState.REJECTED
    assert answered - decided < 0.5  # the doorbell, not a poll or the 20 s timeout
    assert answered - started >= 1.0  # it did wait for the decision

    # One access line per request, under its story's id, with the time the wait took; none of
    # uvicorn's own (`127.0.0.1:<port> - "GET ... HTTP/1.1" 200`).
    access = re.compile(
        rf"backbone.access \[{response.headers['X-Correlation-ID']}\] "
        rf'"GET /api/orders/{order.id}/\?wait=20" 200 (\d+) B ([\d.]+) ms'
    )
    line = wait_for(lambda: access.search(web.log.read_text()), timeout=5, what="the access log line")
    assert line, web.log.read_text()
    assert int(line[1]) == len(response.content)
    assert 1000 <= float(line[2]) <= (answered - started) * 1000 + 100
    assert 'HTTP/1.1" 200' not in web.log.read_text()


def test_another_customers_order_is_404_before_any_wait(web: Web, catalog) -> None:
    _, (theirs,) = pending_orders("dave", 1)
    started = time.monotonic()
    response = httpx.get(f"{web.url}/api/orders/{theirs.id}/?wait=20", headers=customer("eve"), timeout=40)
    assert response.status_code == 404
    assert response.json()["detail"]
    assert time.monotonic() - started < 2.0


def test_a_customer_past_the_cap_is_answered_429_while_others_wait(web: Web, catalog) -> None:
    greedy, greedy_orders = pending_orders("greedy", CAP + 1)
    other, (other_order,) = pending_orders("other", 1)

    async def scenario() -> tuple[httpx.Response, list, tuple, httpx.Response]:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=100), timeout=40) as client:
            held = [
                asyncio.create_task(wait_for_outcome(client, web.url, o, greedy)) for o in greedy_orders[:CAP]
            ]
            await asyncio.sleep(2)  # the cap is reached
            refused, _ = await wait_for_outcome(client, web.url, greedy_orders[CAP], greedy)
            others = asyncio.create_task(wait_for_outcome(client, web.url, other_order, other))
            await asyncio.sleep(1)
            assert not others.done()  # another customer still gets a real wait
            await in_thread(lambda: [reject(order) for order in [*greedy_orders[:CAP], other_order]])
            answers = await asyncio.gather(*held)
            # Slots are given back when the waits end: the customer may wait again.
            again, _ = await wait_for_outcome(client, web.url, greedy_orders[CAP], greedy, wait=0.5)
            return refused, answers, await others, again

    refused, answers, (other_answer, _), again = run(scenario())

    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert "Too many waits at once" in refused.json()["detail"]
    assert [response.status_code for response, _ in answers] == [200] * CAP
    assert other_answer.status_code == 200
    assert other_answer.json()["state"] == OrderState.REJECTED
    assert again.status_code == 200
    assert again.json()["state"] == OrderState.REQUESTED


def test_without_redis_waits_answer_at_once_and_wake_ups_come_back_with_it(tmp_path: Path, catalog) -> None:
    headers, (first, second) = pending_orders("bob", 2)
    doorbell = DisposableRedis()
    doorbell.up()
    try:
        # One worker: every wait goes to the listener that lived through the outage.
        web = Web(tmp_path / "web.log", workers=1, REDIS_URL=doorbell.url)
    except BaseException:
        doorbell.down()
        raise

    def wait_on(order: Order) -> tuple[httpx.Response, float]:
        started = time.monotonic()
        response = httpx.get(f"{web.url}/api/orders/{order.id}/?wait=20", headers=headers, timeout=40)
        return response, time.monotonic() - started

    try:
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(wait_on, first)
            time.sleep(1.5)  # held, with wake-ups
            doorbell.down()
            stopped = time.monotonic()
            response, _ = held.result()
        assert response.status_code == 200
        assert response.json()["state"] == OrderState.REQUESTED
        assert time.monotonic() - stopped < 3.0  # the held wait answered when Redis went, not at 20 s

        response, seconds = wait_on(first)  # while Redis is down
        assert response.status_code == 200
        assert response.json()["state"] == OrderState.REQUESTED
        assert seconds < 2.0

        doorbell.process = None
        restarted = DisposableRedis()
        restarted.port, restarted.url = doorbell.port, doorbell.url
        restarted.up()
        doorbell = restarted

        def woken() -> bool:
            # Once the listener has resubscribed, a publish on the order's channel wakes the waiter.
            async def scenario() -> float:
                async with httpx.AsyncClient(timeout=40) as client:
                    waiting = asyncio.create_task(wait_for_outcome(client, web.url, second, headers, wait=3))
                    await asyncio.sleep(0.5)
                    await in_thread(
                        lambda: Order.objects.filter(id=second.id).update(
                            state=OrderState.REJECTED, reason="out_of_stock"
                        )
                    )
                    doorbell.client().publish(channel(second.id), b"1")
                    published = time.monotonic()
                    response, answered = await waiting
                    return answered - published if response.json()["state"] == OrderState.REJECTED else 99

            delay = run(scenario())
            Order.objects.filter(id=second.id).update(state=OrderState.REQUESTED, reason="")
            return delay < 0.5

        wait_for(woken, timeout=40, interval=0.5, what="wake-ups to come back with Redis")
    finally:
        web.stop()
        doorbell.down()
    log = web.log.read_text()
    assert "order wake-ups stopped" in log, log
    assert "order wake-ups are back" in log, log
    assert "Traceback" not in log, log
    assert '" 500' not in log, log


@pytest.mark.parametrize("outage", ["path vanished", "hung", "subscription refused"])
def test_after_a_redis_outage_the_subscription_is_made_again_and_wakes_waiters_at_once(
    tmp_path: Path, catalog, outage: str
) -> None:
    """The web's listener must count a subscription only once the server confirmed it, notice
    one that went silent, and subscribe again once Redis is back: the next decision then wakes
    its waiter at once. The outages, on a redis-server of the test's own:

    - "path vanished": the connection to Redis goes silent (VanishingPath: a host gone, a
      partition), Redis stops, then starts again at the same address;
    - "hung": Redis stops answering (SIGSTOP, as `docker pause` or a frozen VM), then resumes;
    - "subscription refused": Redis drops the subscriber and refuses PSUBSCRIBE (NOPERM: the
      channels were taken out of the user's ACL, as on a misconfigured replica), then allows it.
    """
    headers, (first, second) = pending_orders(f"outage-{outage.split()[0]}", 2)
    doorbell = DisposableRedis()
    doorbell.up()
    path = VanishingPath(doorbell.port)
    try:
        web = Web(tmp_path / "web.log", workers=1, REDIS_URL=path.url)  # one worker: one listener
    except BaseException:
        path.close()
        doorbell.down()
        raise

    def log() -> str:
        return web.log.read_text(errors="replace")

    def woken_after(order: Order) -> float:
        """Seconds from the decision's commit (and doorbell) to its waiter's answer."""

        async def scenario() -> float:
            async with httpx.AsyncClient(timeout=40) as client:
                waiting = asyncio.create_task(wait_for_outcome(client, web.url, order, headers, wait=15))
                await asyncio.sleep(1.0)
                decided = await in_thread(lambda: reject(order))
                response, answered = await waiting
                assert response.status_code == 200, response.text
                assert response.json()["state"] == OrderState.REJECTED, response.json()
                return answered - decided

        return run(scenario())

    try:
        with override_settings(REDIS_URL=doorbell.url):  # the decision rings this test's Redis
            wakeups._publisher.cache_clear()
            assert woken_after(first) < 0.1, log()  # the listener is subscribed and wakes waiters
            away_from = len(log())
            if outage == "path vanished":
                path.vanish()
                doorbell.down()
                time.sleep(10)
                doorbell.process = None
                doorbell.up()
                path.restore()
            elif outage == "hung":
                doorbell.hang()
                time.sleep(10)
                doorbell.resume()
            else:
                doorbell.client().execute_command("ACL", "SETUSER", "default", "resetchannels")
                time.sleep(5)  # Redis dropped the subscriber; each PSUBSCRIBE is refused
                doorbell.client().execute_command("ACL", "SETUSER", "default", "allchannels")
            back_from = len(log())
            assert "order wake-ups stopped" in log()[away_from:], log()  # noticed while away
            assert "order wake-ups are back" not in log()[:back_from], log()  # not before it was

            wait_for(
                lambda: "order wake-ups are back" in log()[back_from:],
                timeout=30,
                what=f"resubscribed\n{log()}",
            )
            assert woken_after(second) < 0.1, log()
    finally:
        web.stop()
        wakeups._publisher.cache_clear()
        path.close()
        doorbell.down()
    assert "Traceback" not in log(), log()
    assert '" 500' not in log(), log()
