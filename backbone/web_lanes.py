"""The web process's application: two lanes, so that a request costs what Django costs and a
long-poll still holds no thread.

Django's ASGI handler gives every request a thread of its own (a fresh executor, started and
joined per request) and crosses between the event loop and that thread for each sync
middleware hook, signal and view: a dozen hops for one `GET`. Most requests never wait, so:

- **The direct lane** (every request that does not ask to wait) runs Django's WSGI handler,
  the whole middleware chain and view in one call, on one of a fixed set of threads that live
  as long as the worker (`WEB_THREADS` per worker). A thread serves one request at a time. The
  body is read on the event loop first (backbone/wsgi_on_threads.py).
- **The waiting lane** runs Django's ASGI handler on its own URLconf (`WEB_WAITING_URLCONF`),
  whose views are async: their wait is a coroutine. A request goes there when its path matches
  a view of that URLconf and the view's `asks_to_wait(scope)` says the request asks to wait
  (`?wait=N`, `Prefer: wait=N`). Its sync code (signals, middleware hooks, authentication,
  reads) runs on one thread the worker's waits share, so that a thousand waiters are a
  thousand coroutines and one thread. That code must leave no database connection open
  between its calls (the orders views' database turns close theirs). Every path under
  `static_prefix` (STATIC_URL) goes there too: ServeStatic's middleware is async only
  (backbone/static_files.py), and a static file sent from the loop holds no direct thread
  while a slow client downloads it.

Every other request, and every request of a sync server (the test client, runserver), goes by
the project's ROOT_URLCONF, whose views are sync, so that the direct lane runs them in its
thread (an async view under a sync handler starts a thread and an event loop of its own for each
request). A waiting lane's view has a sync twin there that answers the same request without the
wait (placing an order) or waits holding its thread (orders' detail view on a sync server): the
waiting lane is an extra, never the only way to an answer.

Only asgiref's public API: `ThreadSensitiveContext(executor=...)` and `sync_to_async` are
documented in asgiref's README ("Thread-sensitive contexts", 3.13.0, the version pinned): a
context with an executor sends the block's thread-sensitive calls to that executor. The README
asks not to use one executor for two blocks at the same time; the waiting lane does on purpose
(every wait's block shares `web-waits`): their calls take turns on that one thread, so a sync
call there must never block on what another wait does.

When every direct thread is busy, a request waits for one at most `WEB_QUEUE_SECONDS`; past
that it is answered 503 with `Retry-After` (load shed, no dropped connection).
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from asgiref.sync import ThreadSensitiveContext
from django.core.handlers.asgi import ASGIHandler, ASGIRequest
from django.core.handlers.wsgi import WSGIHandler
from django.urls import Resolver404, resolve

from . import wsgi_on_threads
from .wsgi_on_threads import Receive, Scope, Send

RETRY_AFTER_SECONDS = 1


class WaitingView(Protocol):
    @classmethod
    def asks_to_wait(cls, scope: Scope) -> bool: ...


class WebApplication:
    def __init__(
        self, *, threads: int, queue_seconds: float, waiting_urlconf: str, static_prefix: str | None = None
    ) -> None:
        self._direct = WSGIHandler()
        self._waiting = _WaitingHandler(waiting_urlconf)
        self._waiting_urlconf = waiting_urlconf
        self._static_prefix = static_prefix
        self._threads = threads
        self._queue_seconds = queue_seconds
        # Made on first use, in the worker's event loop (asyncio objects belong to one loop).
        self._idle: asyncio.Queue[ThreadPoolExecutor] | None = None
        self._waits_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="web-waits")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._is_static(scope) or self._asks_to_wait(scope):
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

    def _is_static(self, scope: Scope) -> bool:
        return self._static_prefix is not None and scope["path"].startswith(self._static_prefix)

    def _asks_to_wait(self, scope: Scope) -> bool:
        try:
            match = resolve(scope["path"], urlconf=self._waiting_urlconf)
        except Resolver404:
            return False
        view: WaitingView = match.func.view_class  # type: ignore[attr-defined]  # DRF and adrf set it
        return view.asks_to_wait(scope)


class _WaitingHandler(ASGIHandler):
    """Django's ASGI handler, resolving by the waiting URLconf (`request.urlconf`, which Django
    reads before ROOT_URLCONF)."""

    def __init__(self, urlconf: str) -> None:
        super().__init__()
        self.request_class = type("WaitingRequest", (ASGIRequest,), {"urlconf": urlconf})


def query_has(scope: Scope, name: str) -> bool:
    """Whether the request's query string has the parameter (with any value)."""
    query: bytes = scope.get("query_string", b"")
    key = name.encode() + b"="
    return query.startswith(key) or b"&" + key in query


def header(scope: Scope, name: str) -> str | None:
    wanted = name.lower().encode()
    values = [value.decode("latin1") for key, value in scope.get("headers", ()) if key == wanted]
    return ", ".join(values) if values else None


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
