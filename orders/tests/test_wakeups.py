"""Long-poll wake-ups through Redis pub/sub: woken by a publish, not by a sleep loop.

`bells.wait_until` in an event loop of its own, as in a web worker, with the real Redis and
`publish_change` ringing from another thread as the Orders consumer does after a commit.
"""

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import pytest

from orders import bells, wakeups

pytestmark = pytest.mark.usefixtures("redis_service")

T = TypeVar("T")


def wait_until(
    order_id: uuid.UUID,
    read: Callable[[], T],
    done: Callable[[T], bool],
    timeout: float,
    cannot_be_done: Callable[[str], bool] = lambda news: False,
) -> T:
    async def reading() -> T:
        return read()

    async def waiting() -> T:
        return await bells.wait_until(
            order_id, read=reading, done=done, timeout=timeout, cannot_be_done=cannot_be_done
        )

    return asyncio.run(waiting())


def test_a_waiter_wakes_up_when_the_order_changes() -> None:
    order_id = uuid.uuid4()
    state = {"final": False}
    reads: list[float] = []

    def read() -> bool:
        reads.append(time.monotonic())
        return state["final"]

    def change_later() -> None:
        time.sleep(0.5)
        state["final"] = True
        wakeups.publish_change(order_id)

    changer = threading.Thread(target=change_later)
    started = time.monotonic()
    changer.start()
    outcome = wait_until(order_id, read=read, done=bool, timeout=20)
    elapsed = time.monotonic() - started
    changer.join()

    assert outcome is True
    assert elapsed < 10  # woken, not timed out
    assert len(reads) == 2  # a first read, then the wake-up: no polling


def test_a_waiter_answers_with_the_current_value_at_the_timeout() -> None:
    started = time.monotonic()
    reads = []
    outcome = wait_until(
        uuid.uuid4(), read=lambda: reads.append(1) or "still", done=lambda _: False, timeout=0.5
    )
    assert outcome == "still"
    assert time.monotonic() - started >= 0.5
    assert len(reads) == 2  # before the wait and at its end


def test_a_change_already_made_returns_at_once() -> None:
    started = time.monotonic()
    assert wait_until(uuid.uuid4(), read=lambda: "done", done=lambda value: value == "done", timeout=20)
    assert time.monotonic() - started < 5


def test_the_waiters_of_other_orders_are_not_woken() -> None:
    mine, other = uuid.uuid4(), uuid.uuid4()
    reads = []

    def ring_the_other() -> None:
        time.sleep(0.3)
        wakeups.publish_change(other)

    ringer = threading.Thread(target=ring_the_other)
    ringer.start()
    wait_until(mine, read=lambda: reads.append(1), done=lambda _: False, timeout=1.0)
    ringer.join()
    assert len(reads) == 2  # no extra read for the other order's bell


def test_news_that_cannot_end_the_wait_is_let_pass_without_a_read() -> None:
    order_id = uuid.uuid4()
    state = {"now": "REQUESTED"}
    reads: list[str] = []

    def read() -> str:
        reads.append(state["now"])
        return state["now"]

    def move(to: str, after: float) -> None:
        time.sleep(after)
        state["now"] = to
        wakeups.publish_change(order_id, to)

    def story() -> None:
        move("VALIDATED", 0.3)
        move("CONFIRMED", 0.3)

    mover = threading.Thread(target=story)
    mover.start()
    outcome = wait_until(
        order_id,
        read=read,
        done=lambda value: value == "CONFIRMED",
        timeout=20,
        cannot_be_done=lambda news: news in {"REQUESTED", "VALIDATED"},
    )
    mover.join()

    assert outcome == "CONFIRMED"
    assert reads == ["REQUESTED", "CONFIRMED"]  # VALIDATED rang, and was not read


def test_a_ring_without_news_the_waiter_knows_is_read() -> None:
    order_id = uuid.uuid4()
    reads: list[int] = []

    def ring() -> None:
        time.sleep(0.3)
        wakeups.publish_change(order_id)  # no state: a shipment's change, say

    ringer = threading.Thread(target=ring)
    ringer.start()
    wait_until(
        order_id,
        read=lambda: reads.append(1),
        done=lambda _: False,
        timeout=1.0,
        cannot_be_done=lambda news: news == "VALIDATED",
    )
    ringer.join()
    assert len(reads) == 3  # before the wait, on the ring, at the deadline
