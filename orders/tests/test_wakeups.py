"""Long-poll wake-ups through Redis pub/sub: woken by a publish, not by a sleep loop."""

import threading
import time
import uuid

import pytest

from orders import wakeups

pytestmark = pytest.mark.usefixtures("redis_service")


def test_a_waiter_wakes_up_when_the_order_changes() -> None:
    order_id = uuid.uuid4()
    state = {"final": False}
    reads: list[float] = []

    def read() -> bool:
        reads.append(time.monotonic())
        return state["final"]

    def change_later() -> None:
        time.sleep(0.3)
        state["final"] = True
        wakeups.publish_change(order_id)

    changer = threading.Thread(target=change_later)
    started = time.monotonic()
    changer.start()
    outcome = wakeups.wait_until(order_id, read=read, done=bool, timeout=20)
    elapsed = time.monotonic() - started
    changer.join()

    assert outcome is True
    assert elapsed < 10  # woken, not timed out
    assert len(reads) <= 4  # a first read, maybe the subscribe confirmation, then the wake-up: no polling


def test_a_waiter_answers_with_the_current_value_at_the_timeout() -> None:
    started = time.monotonic()
    reads = []
    outcome = wakeups.wait_until(
        uuid.uuid4(), read=lambda: reads.append(1) or "still", done=lambda _: False, timeout=0.5
    )
    assert outcome == "still"
    assert time.monotonic() - started >= 0.5
    assert len(reads) <= 3


def test_no_wait_reads_once() -> None:
    calls = []
    assert (
        wakeups.wait_until(uuid.uuid4(), read=lambda: calls.append(1) or 7, done=lambda _: False, timeout=0)
        == 7
    )
    assert calls == [1]


def test_a_change_already_made_returns_at_once() -> None:
    started = time.monotonic()
    assert wakeups.wait_until(
        uuid.uuid4(), read=lambda: "done", done=lambda value: value == "done", timeout=20
    )
    assert time.monotonic() - started < 5
