"""Wake-ups for long-polling clients: one Redis pub/sub channel per order.

A state change publishes on the order's channel after its transaction commits; a waiting
request subscribes *before* it re-reads the order, so a change that commits between the read
and the wait still wakes it (no lost wake-up), and no request ever sleeps in a loop.
Redis is only a doorbell: the state is always read from the database.
"""

import logging
import time
import uuid
from collections.abc import Callable
from functools import cache
from typing import TypeVar

import redis
from django.conf import settings

log = logging.getLogger(__name__)

T = TypeVar("T")


@cache
def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, health_check_interval=30)


def channel(order_id: uuid.UUID | str) -> str:
    return f"orders.changed.{order_id}"


def publish_change(order_id: uuid.UUID | str) -> None:
    """Ring the order's doorbell. Best effort: a lost wake-up only costs a waiter its timeout."""
    try:
        _client().publish(channel(order_id), b"1")
    except redis.RedisError as error:
        log.warning("could not publish the wake-up of order %s: %s", order_id, error)


def wait_until(
    order_id: uuid.UUID | str, *, read: Callable[[], T], done: Callable[[T], bool], timeout: float
) -> T:
    """Return `read()` as soon as `done` holds for it, or when `timeout` seconds have passed."""
    if timeout <= 0:
        return read()
    try:
        pubsub = _client().pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(channel(order_id))
    except redis.RedisError as error:
        log.warning("long-poll of order %s without wake-ups (Redis: %s): answering now", order_id, error)
        return read()
    deadline = time.monotonic() + timeout
    try:
        while True:
            value = read()  # after subscribing: a change from now on rings the bell
            remaining = deadline - time.monotonic()
            if done(value) or remaining <= 0:
                return value
            # Blocks on the socket until a message arrives or the time is up.
            pubsub.get_message(timeout=remaining)
    except redis.RedisError as error:
        log.warning("long-poll of order %s lost Redis (%s): answering now", order_id, error)
        return read()
    finally:
        pubsub.close()
