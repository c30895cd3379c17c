"""The web process's application: two lanes, so that a request costs what Django costs and a
long-poll still holds no thread.

Django's ASGI handler gives every request a thread of its own (a fresh executor, started and
joined per request) and crosses between the event loop and that thread for each sync
middleware hook, signal and view: a dozen hops for one `GET`. Most requests never wait, so:

- **The direct lane** (every request that does not ask to wait) runs Django's WSGI handler,
  the whole middleware chain and view in one call, on one of a fixed set of threads that live
  as long as the worker (`WEB_THREADS` per worker). A thread serves one request at a time. The
  body is read on the event loop first (backbone/wsgi_on_threads.py).
- **The waiting lane** (a request that asks to wait: `?wait=` in its query or `Prefer: wait=`)
  runs Django's ASGI handler, so an async view's wait is a coroutine. Its sync code (signals,
  middleware hooks, authentication) runs on one thread the worker's waits share, so that a
  thousand waiters are a thousand coroutines and one thread. That code must leave no database
  connection open between its calls (the views' database turns close theirs).

Both lanes run the same URLconf and views: Django adapts a sync view to the ASGI lane and an
async one to the WSGI lane, so the choice of lane changes the cost of a request, never its
answer.

When every direct thread is busy, a request waits for one at most `WEB_QUEUE_SECONDS`; past
that it is answered 503 with `Retry-After` (load shed, no dropped connection).
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler

from . import wsgi_on_threads
from .wsgi_on_threads import Receive, Scope, Send

RETRY_AFTER_SECONDS = 1


class WebApplication:
    def __init__(self, *, threads: int, queue_seconds: float) -> None:
        self._direct = WSGIHandler()
        self._waiting = ASGIHandler()
        self._threads = threads
        self._queue_seconds = queue_seconds
        # Made on first use, in the worker's event loop (asyncio objects belong to one loop).
        self._idle: asyncio.Queue[ThreadPoolExecutor] | None = None
        self._waits_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="web-waits")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or asks_to_wait(scope):
            # Django's handler answers what is not HTTP (uvicorn's lifespan probe) by raising.
            async with ThreadSensitiveContext(executor=self._waits_thread):
                await self._waiting(scope, receive, send)  # type: ignore[arg-type]  # Django's types are narrower
        else:
            await self._serve_directly(scope, receive, send)

    async def _serve_directly(self, scope: Scope, receive: Receive, send: Send) -> None:
        idle = self._idle_threads()
        try:
            thread = await asyncio.wait_for(idle.get(), timeout=self._queue_seconds)
        except TimeoutError:
            await _shed(send)
            return
        try:
            async with ThreadSensitiveContext(executor=thread):
                await wsgi_on_threads.serve(self._direct, scope, receive, send)
        finally:
            idle.put_nowait(thread)

    def _idle_threads(self) -> "asyncio.Queue[ThreadPoolExecutor]":
        if self._idle is None:
            self._idle = asyncio.Queue()
            for number in range(self._threads):
                self._idle.put_nowait(ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"web-{number}"))
        return self._idle


def asks_to_wait(scope: Scope) -> bool:
    """A long-poll (`?wait=` in the query) or `Prefer: wait=N` (RFC 7240)."""
    query: bytes = scope.get("query_string", b"")
    if query.startswith(b"wait=") or b"&wait=" in query:
        return True
    return any(name == b"prefer" and b"wait" in value.lower() for name, value in scope.get("headers", ()))


async def _shed(send: Send) -> None:
    body = b'{"detail": "The server is busy: retry in a second."}'
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
