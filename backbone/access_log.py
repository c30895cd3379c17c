"""The web process's access log: one line per HTTP request, with its duration.

uvicorn's own access log has neither the duration nor the story's id (its worker runs with it
off: backbone/uvicorn_worker.py). This ASGI wrapper times each request from its first byte in
to its last byte out, and logs, under the request's correlation id (taken from the response's
X-Correlation-ID header, so the line joins the request's other log lines):

    INFO backbone.access [<correlation id>] "GET /api/orders/<id>/?wait=5" 200 412 B 1834.2 ms

A request the client gave up on before any answer is logged with status 499 (nginx's "client
closed request"), one whose application raised before answering with 500.
"""

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .correlation import HEADER, correlation_scope

log = logging.getLogger("backbone.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]] | Any  # Django's ASGIHandler is typed loosely

_CORRELATION_HEADER = HEADER.lower().encode()
CLIENT_CLOSED = 499


class AccessLog:
    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answer = _Answer()

        async def counting_send(message: Message) -> None:
            answer.saw(message)
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        except Exception:
            if answer.status == CLIENT_CLOSED:
                answer.status = 500  # uvicorn answers 500 for an application that raised
            raise
        finally:
            _log(scope, answer, (time.perf_counter() - started) * 1000)


class _Answer:
    """What the response said so far: its status, size and correlation id."""

    def __init__(self) -> None:
        self.status = CLIENT_CLOSED
        self.bytes = 0
        self.correlation_id: str | None = None

    def saw(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            for name, value in message.get("headers", ()):
                if name.lower() == _CORRELATION_HEADER:
                    self.correlation_id = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            self.bytes += len(message.get("body", b""))


def _log(scope: Scope, answer: _Answer, milliseconds: float) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    target = scope.get("raw_path") or scope["path"].encode()
    if scope.get("query_string"):
        target += b"?" + scope["query_string"]
    # Under the request's own story (None outside one, e.g. a 404 of a static path: `-`).
    with correlation_scope(answer.correlation_id or "-"):
        log.info(
            '"%s %s" %d %d B %.1f ms',
            scope["method"],
            target.decode("latin-1"),
            answer.status,
            answer.bytes,
            milliseconds,
        )
