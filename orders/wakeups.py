"""Wake-ups for long-polling clients: one Redis pub/sub channel per order.

A state change publishes on the order's channel after its transaction commits; a waiting
request subscribes *before* it re-reads the order, so a change that commits between the read
and the wait still wakes it (no lost wake-up), and no request ever sleeps in a loop.
Redis is only a doorbell: the state is always read from the database.

Publishing runs in the consumer, after each commit: while Redis is away it must not hold the
consumer up. A publish gives up after PUBLISH_TIMEOUT seconds, and after a failure the next
wake-ups within PUBLISH_COOLDOWN seconds are skipped (waiters answer at their timeout).
"""

import logging
import time
import uuid
from collections.abc import Callable
from functools import cache
from typing import TypeVar

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from backbone.aftercommit import Cooldown

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 1.0  # a PUBLISH to a healthy Redis takes a millisecond
PUBLISH_COOLDOWN = 15.0

_publishing_failed = Cooldown()

T = TypeVar("T")


@cache
def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, health_check_interval=30)


@cache
def _publisher() -> redis.Redis:
    # One immediate retry: enough for a connection Redis dropped while idle (e.g. a restart).
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=PUBLISH_TIMEOUT,
        socket_timeout=PUBLISH_TIMEOUT,
        retry=Retry(NoBackoff(), 1),
    )


def channel(order_id: uuid.UUID | str) -> str:
    return f"orders.changed.{order_id}"


def publish_change(order_id: uuid.UUID | str) -> None:
    """Ring the order's doorbell. Best effort: a lost wake-up only costs a waiter its timeout."""
    if _publishing_failed.active():
        log.debug("wake-up of order %s skipped: Redis failed moments ago", order_id)
        return
    try:
        _publisher().publish(channel(order_id), b"1")
    except redis.RedisError as error:
        _publishing_failed.start(PUBLISH_COOLDOWN)
        log.warning(
            "could not publish the wake-up of order %s (skipping wake-ups for %gs): %s",
            order_id,
            PUBLISH_COOLDOWN,
            error,
        )


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
