"""Wake-ups for long-polling clients: one Redis pub/sub channel per order.

A state change publishes on the order's channel after its transaction commits; the web
process listens to all of them (orders/bells.py) and wakes that order's waiters, which re-read
the order: Redis is only a doorbell, the state is always read from the database.

Publishing runs in the consumer, after each commit: while Redis is away it must not hold the
consumer up. A publish gives up after PUBLISH_TIMEOUT seconds, and after a failure the next
wake-ups within PUBLISH_COOLDOWN seconds are skipped (waiters answer at their timeout).
"""

import logging
import uuid
from functools import cache

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from backbone.aftercommit import Cooldown

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT = 1.0  # a PUBLISH to a healthy Redis takes a millisecond
PUBLISH_COOLDOWN = 15.0

_publishing_failed = Cooldown()


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


def publish_change(order_id: uuid.UUID | str, news: str = "changed") -> None:
    """Ring the order's doorbell with the news of the change (for a state change, the state the
    order moved to: a waiter for a final state need not read on "VALIDATED"). Best effort: a
    lost wake-up only costs a waiter its timeout."""
    if _publishing_failed.active():
        log.debug("wake-up of order %s skipped: Redis failed moments ago", order_id)
        return
    try:
        _publisher().publish(channel(order_id), news.encode())
    except redis.RedisError as error:
        _publishing_failed.start(PUBLISH_COOLDOWN)
        log.warning(
            "could not publish the wake-up of order %s (skipping wake-ups for %gs): %s",
            order_id,
            PUBLISH_COOLDOWN,
            error,
        )
