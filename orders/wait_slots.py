"""The per-customer cap on concurrent long-polls, counted in Redis across every web worker.

A wait costs the server little, but not nothing (a socket, an event, a Redis doorbell): one
client opening thousands of them must not take what a storefront's customers need. Each held
wait is a member of its customer's sorted set, scored with the time it ends at the latest (its
timeout plus a grace). Expired members are dropped on every acquire, so the slot of a worker
that died mid-wait frees itself. Past ORDER_WAITS_PER_CUSTOMER the wait is refused: the view
answers 429 with Retry-After (until the soonest slot ends).

When Redis is unreachable the cap is not enforced: the wait goes ahead and a warning is logged
(fail open, like backbone/throttling.py); without Redis there are no wake-ups either, so such
waits answer at once.
"""

import asyncio
import logging
import math
import time
import uuid
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio
from django.conf import settings
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

GRACE_SECONDS = 5.0
REDIS_CONNECTIONS = 8  # per web worker
# Waiting longer for a free connection counts as Redis being away (a dead Redis is noticed by
# the connect and socket timeouts; this only bounds the queue of a burst of waits).
REDIS_QUEUE_SECONDS = 30.0

# Atomic across workers: drop expired slots, refuse past the cap (with the soonest end), or take one.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], math.ceil(ARGV[2] - ARGV[1]) + 1)
return false
"""


class TooManyWaits(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"over {settings.ORDER_WAITS_PER_CUSTOMER} concurrent waits")
        self.retry_after = retry_after


def key(customer_id: object) -> str:
    # Under the cache's prefix, so that test runs and shops sharing one Redis never count together.
    return f"{settings.CACHES['default'].get('KEY_PREFIX', '')}:orders:waits:{customer_id}"


_by_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, redis.asyncio.Redis]" = (
    weakref.WeakKeyDictionary()
)


def _client() -> redis.asyncio.Redis:
    # redis.asyncio connections belong to the loop that opened them: one client per loop. A
    # few connections, which a thousand waits starting at once queue for, rather than a
    # thousand connections opened at once (Redis would be slow to accept them all).
    loop = asyncio.get_running_loop()
    if loop not in _by_loop:
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=REDIS_CONNECTIONS,
            timeout=REDIS_QUEUE_SECONDS,
            socket_connect_timeout=1.0,
            socket_timeout=1.0,
        )
        _by_loop[loop] = redis.asyncio.Redis(connection_pool=pool)
    return _by_loop[loop]


@asynccontextmanager
async def slot(customer_id: object, *, seconds: float) -> AsyncIterator[None]:
    """Hold one of the customer's wait slots for the block; raise TooManyWaits past the cap."""
    member, now = uuid.uuid4().hex, time.time()
    client = _client()
    try:
        refused = await client.eval(
            _ACQUIRE,
            1,
            key(customer_id),
            now,
            now + seconds + GRACE_SECONDS,
            settings.ORDER_WAITS_PER_CUSTOMER,
            member,
        )
    except RedisError as error:
        log.warning("wait cap not enforced: Redis is unavailable: %s", error)
        yield
        return
    if refused is not None:
        raise TooManyWaits(retry_after=max(1, math.ceil(float(refused) - GRACE_SECONDS - now)))
    try:
        yield
    finally:
        try:
            await client.zrem(key(customer_id), member)
        except RedisError as error:  # the slot expires by itself
            log.warning("wait slot of customer %s not released (Redis: %s)", customer_id, error)
