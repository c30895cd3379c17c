"""Long-poll wake-ups in the ASGI web process: one Redis subscription per worker, not per waiter.

Each worker process (each event loop) keeps one redis.asyncio pub/sub connection subscribed to
the pattern `orders.changed.*`, the channels `wakeups.publish_change` rings after a commit, and
wakes the waiters of that order through asyncio events: a thousand waiters cost a thousand
events, not a thousand connections or threads. A waiter registers its event *before* it
re-reads the order, so a change that commits between the read and the wait still wakes it.
Redis is only a doorbell: the state is always read from the database. A ring carries the news
of the change (the state the order moved to); a waiter may let news that cannot end its wait
pass without a read (an order that became VALIDATED is not decided yet), and reads on any other
ring, one without news and every ring of a lost subscription included.

The subscription counts only once the server confirmed the PSUBSCRIBE, and stays counted only
while the connection answers: a quiet one is pinged every PING_INTERVAL seconds, and one that
does not answer within PONG_TIMEOUT is dropped (a connection can die without a word: a host gone,
a hung server, an address that still accepts connections while Redis is away).

While Redis is away there are no wake-ups: when the subscription drops, every waiter is woken
(it re-reads and answers with the current state), a new wait answers at once, and the listener
reconnects with a backoff, logging once when the outage starts and once when it ends (after the
server confirmed the new subscription). No waiter ever hangs past its timeout.
"""

import asyncio
import logging
import uuid
import weakref
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TypeVar

import redis.asyncio
from django.conf import settings
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from backbone.backoff import jittered

from .wakeups import channel

log = logging.getLogger(__name__)

PATTERN = channel("*")
PREFIX = channel("")
CONNECT_TIMEOUT = 2.0  # also how long the first wait of a new worker waits for the subscription
# A quiet subscription is pinged after PING_INTERVAL s; no answer PONG_TIMEOUT s later: lost.
PING_INTERVAL, PONG_TIMEOUT = 5.0, 2.0
BACKOFF_START, BACKOFF_MAX = 0.5, 10.0

T = TypeVar("T")


class Bells:
    """The doorbells of one event loop: a listener task and the waiting events by order id."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._waiters: defaultdict[str, set[Bell]] = defaultdict(set)
        self._subscribed = asyncio.Event()
        self._first_attempt = asyncio.Event()  # set once the first connection succeeded or failed
        self._task = asyncio.get_running_loop().create_task(self._listen(), name="order-bells")

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    async def ready(self) -> bool:
        """Whether wake-ups work now; a listener just started gets one chance to connect."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self._first_attempt.wait(), CONNECT_TIMEOUT * 2)
        return self.subscribed

    @contextmanager
    def bell(self, order_id: uuid.UUID | str) -> Iterator["Bell"]:
        """A bell that rings whenever the order's doorbell does, for as long as the block runs."""
        key, bell = str(order_id), Bell()
        self._waiters[key].add(bell)
        try:
            yield bell
        finally:
            waiting = self._waiters.get(key)
            if waiting is not None:
                waiting.discard(bell)
                if not waiting:
                    del self._waiters[key]

    def waiting(self) -> int:
        return sum(len(bells) for bells in self._waiters.values())

    async def _listen(self) -> None:
        backoff, failing = BACKOFF_START, False
        while True:
            # No retries inside redis-py: a lost subscription must be noticed at once (waiters
            # answer), and this loop reconnects and subscribes again itself. Every read and
            # write is bounded: an address that accepts connections and never answers (a server
            # shutting down, a proxy before a dead node) must not hold the listener.
            client = redis.asyncio.Redis.from_url(
                self._url,
                socket_connect_timeout=CONNECT_TIMEOUT,
                socket_timeout=CONNECT_TIMEOUT,
                retry=Retry(NoBackoff(), 0),
            )
            pubsub = client.pubsub()  # the server's confirmation of PSUBSCRIBE is read, not skipped
            try:
                await _subscribe(pubsub)
                self._subscribed.set()
                self._first_attempt.set()
                if failing:
                    log.info("order wake-ups are back: subscribed to %s again", PATTERN)
                backoff, failing = BACKOFF_START, False
                await self._relay(pubsub)
            except (RedisError, OSError, SubscriptionLost) as error:
                if not failing:
                    log.warning("order wake-ups stopped, retrying with a backoff (Redis: %s)", error)
                failing = True
            finally:
                self._subscribed.clear()
                self._first_attempt.set()
                self._ring_everyone()  # they re-read and answer: no wake-up can reach them now
                await _close(pubsub, client)
            await asyncio.sleep(jittered(backoff))  # workers that lost Redis together return apart
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _relay(self, pubsub: redis.asyncio.client.PubSub) -> None:
        """Ring the doorbells of the changes Redis sends, until the subscription is lost.

        A connection can die without a word (a host gone, a hung server): after PING_INTERVAL
        seconds without a message it is pinged, and without any answer PONG_TIMEOUT seconds
        later the subscription counts as lost."""
        loop = asyncio.get_running_loop()
        heard, pinged = loop.time(), False
        while True:
            silent = loop.time() - heard
            if silent >= PING_INTERVAL + PONG_TIMEOUT:
                raise SubscriptionLost(f"no answer to a ping for {PONG_TIMEOUT:g}s")
            if silent >= PING_INTERVAL and not pinged:
                try:
                    async with asyncio.timeout(PONG_TIMEOUT):
                        await pubsub.ping()
                except TimeoutError:
                    raise SubscriptionLost(f"a ping could not be sent in {PONG_TIMEOUT:g}s") from None
                pinged = True
            quiet_until = heard + PING_INTERVAL + (PONG_TIMEOUT if pinged else 0)
            message = await pubsub.get_message(timeout=max(quiet_until - loop.time(), 0.01))
            if message is None:
                continue
            heard, pinged = loop.time(), False  # the server answered: the connection is alive
            if message["type"] == "pmessage":
                self._ring(message["channel"], message["data"])

    def _ring(self, name: bytes | str, news: bytes | str) -> None:
        key = (name.decode() if isinstance(name, bytes) else name).removeprefix(PREFIX)
        text = news.decode(errors="replace") if isinstance(news, bytes) else str(news)
        for bell in self._waiters.get(key, ()):
            bell.ring(text)

    def _ring_everyone(self) -> None:
        for bells in self._waiters.values():
            for bell in bells:
                bell.ring(None)


class Bell:
    """One waiter's doorbell: rung with the news of each change (None: unknown, read anyway)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._news: list[str | None] = []

    def ring(self, news: str | None) -> None:
        self._news.append(news)
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()

    def take_news(self) -> list[str | None]:
        """What rang since the last call, and the bell quiet again."""
        news, self._news = self._news, []
        self._event.clear()
        return news


class SubscriptionLost(Exception):
    """The pub/sub connection stopped answering: it is dropped and the subscription made again."""


async def _subscribe(pubsub: redis.asyncio.client.PubSub) -> None:
    """PSUBSCRIBE, and return once the server confirmed it: sending the command proves nothing."""
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):  # connecting, the handshake and the answer
            await pubsub.psubscribe(PATTERN)
            while True:
                message = await pubsub.get_message(timeout=CONNECT_TIMEOUT)
                if message is not None and message["type"] == "psubscribe":
                    return
    except TimeoutError:
        raise SubscriptionLost(f"no confirmation of PSUBSCRIBE in {CONNECT_TIMEOUT:g}s") from None


async def _close(pubsub: redis.asyncio.client.PubSub, client: redis.asyncio.Redis) -> None:
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await pubsub.aclose()
            await client.aclose()
    except (RedisError, OSError):
        pass  # the connection is gone already (or hangs: it is dropped all the same)


_by_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Bells]" = weakref.WeakKeyDictionary()


def bells() -> Bells:
    """This event loop's doorbells (a worker has one loop; started on the first wait)."""
    loop = asyncio.get_running_loop()
    if loop not in _by_loop:
        _by_loop[loop] = Bells(settings.REDIS_URL)
    return _by_loop[loop]


async def wait_until(
    order_id: uuid.UUID | str,
    *,
    read: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    timeout: float,
    cannot_be_done: Callable[[str], bool] = lambda news: False,
) -> T:
    """Return `await read()` as soon as `done` holds for it, or once `timeout` seconds passed.

    A ring whose news makes `cannot_be_done` true is let pass without a read (news such as
    "VALIDATED" for a wait for a final state); any other ring is read, and so is the deadline."""
    doorbells = bells()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    if not await doorbells.ready():
        log.warning("long-poll of order %s without wake-ups (Redis unavailable): answering now", order_id)
        return await read()
    with doorbells.bell(order_id) as bell:
        while True:
            bell.take_news()
            value = await read()  # after registering: a change from now on rings the bell
            while True:
                remaining = deadline - loop.time()
                if done(value) or remaining <= 0 or not doorbells.subscribed:
                    return value
                with suppress(TimeoutError):
                    await asyncio.wait_for(bell.wait(), remaining)
                news = bell.take_news()
                if not news or not all(item is not None and cannot_be_done(item) for item in news):
                    break  # read again: the deadline, or news that may end the wait
