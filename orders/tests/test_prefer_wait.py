"""`POST /api/orders/` with `Prefer: wait=N` on the real web process: one request places the order
and answers with its outcome, without a thread per waiting request.

Orders are decided in this process through the service the Orders consumer calls (its commit
rings the doorbell), as in test_long_polls.py; no relay or consumer runs.
"""

import asyncio
import time

import httpx
import pytest

from backbone.testing import wait_for
from orders.models import Order, OrderState
from orders.tests import test_long_polls
from orders.tests.factories import stock_level
from orders.tests.test_long_polls import Web, customer, in_thread, reject, run

web, catalog = test_long_polls.web, test_long_polls.catalog  # the same server and stock

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

BODY = {"lines": [{"sku": "KB-1", "quantity": 1}], "payment_token": "tok_visa"}


def placed_by(username: str, count: int = 1) -> list[Order]:
    """The customer's orders once `count` of them are placed (seen from this process)."""
    return wait_for(
        lambda: len(orders := list(Order.objects.filter(customer__username=username))) >= count and orders,
        timeout=10,
        what=f"{count} order(s) of {username}",
    )


def test_a_post_that_prefers_to_wait_answers_with_the_decided_order(web: Web, catalog) -> None:
    headers = {**customer("pat"), "Prefer": "wait=10"}

    async def scenario() -> tuple[httpx.Response, float, float]:
        async with httpx.AsyncClient(timeout=30) as client:
            posting = asyncio.create_task(client.post(f"{web.url}/api/orders/", json=BODY, headers=headers))
            [order] = await in_thread(lambda: placed_by("pat"))
            await asyncio.sleep(0.5)  # the POST is waiting now
            decided = await in_thread(lambda: reject(order))
            response = await posting
            return response, decided, time.monotonic()

    response, decided, answered = run(scenario())

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == OrderState.REJECTED
    assert response.headers["Preference-Applied"] == "wait"
    assert response.headers["Location"].endswith(f"/api/orders/{body['id']}/")
    assert answered - decided < 0.5  # woken by the doorbell, not at the end of the wait


def test_an_order_still_undecided_after_the_wait_is_answered_202(web: Web, catalog) -> None:
    headers = {**customer("quinn"), "Prefer": "respond-async, wait=1"}
    started = time.monotonic()
    response = httpx.post(f"{web.url}/api/orders/", json=BODY, headers=headers, timeout=30)
    elapsed = time.monotonic() - started

    assert response.status_code == 202, response.text
    assert response.json()["state"] == OrderState.REQUESTED
    assert response.headers["Preference-Applied"] == "wait"
    assert response.headers["Location"].endswith(f"/api/orders/{response.json()['id']}/")
    assert 1.0 <= elapsed < 5.0


def test_without_the_preference_the_post_answers_at_once(web: Web, catalog) -> None:
    for prefer in (None, "handling=lenient", "wait=0"):
        headers = customer(f"ruth-{prefer}") | ({"Prefer": prefer} if prefer else {})
        response = httpx.post(f"{web.url}/api/orders/", json=BODY, headers=headers, timeout=30)
        assert response.status_code == 202, (prefer, response.text)
        assert "Preference-Applied" not in response.headers


def test_a_bad_order_that_prefers_to_wait_gets_its_field_errors_at_once(web: Web, catalog) -> None:
    stock_level("LE-1", available=1)
    headers = {**customer("sam"), "Prefer": "wait=10"}
    started = time.monotonic()
    unknown = httpx.post(
        f"{web.url}/api/orders/",
        json={"lines": [{"sku": "NOPE-1", "quantity": 1}], "payment_token": "tok_visa"},
        headers=headers,
        timeout=30,
    )
    short = httpx.post(
        f"{web.url}/api/orders/",
        json={"lines": [{"sku": "LE-1", "quantity": 2}], "payment_token": "tok_visa"},
        headers=headers,
        timeout=30,
    )
    anonymous = httpx.post(f"{web.url}/api/orders/", json=BODY, headers={"Prefer": "wait=10"}, timeout=30)

    assert time.monotonic() - started < 5.0
    assert unknown.status_code == 400, unknown.text
    assert "lines" in unknown.json()["errors"]
    assert short.status_code == 409, short.text
    assert short.json()["shortages"]
    assert anonymous.status_code == 401, anonymous.text
    assert not Order.objects.filter(customer__username="sam").exists()


def test_held_posts_hold_no_thread_and_are_all_answered(web: Web, catalog) -> None:
    names = [f"crowd-{n}" for n in range(10)]
    headers = {name: {**customer(name), "Prefer": "wait=20"} for name in names}
    per_customer = 8  # 80 held POSTs, within each customer's cap on waits

    async def scenario() -> tuple[int, list[httpx.Response]]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits, timeout=40) as client:
            held = [
                asyncio.create_task(client.post(f"{web.url}/api/orders/", json=BODY, headers=headers[name]))
                for name in names
                for _ in range(per_customer)
            ]
            placed = await in_thread(lambda: [o for name in names for o in placed_by(name, per_customer)])
            await asyncio.sleep(1)
            threads = web.worker_threads()
            assert not any(task.done() for task in held)
            await in_thread(lambda: [reject(order) for order in placed])
            return threads, await asyncio.gather(*held)

    threads, answers = run(scenario())

    assert threads < 60, f"{threads} threads in the workers for {len(answers)} held POSTs"
    assert [response.status_code for response in answers] == [200] * len(answers)
    assert {response.json()["state"] for response in answers} == {OrderState.REJECTED}
