"""The web process's access log: one line per HTTP request, with its duration.

uvicorn's own access log has neither the duration nor the story's id (its worker runs with it
off: config/uvicorn_worker.py). This ASGI wrapper times each request from its first byte in
to its last byte out, and logs, under the request's correlation id (taken from the response's
X-Correlation-ID header, so the line joins the request's other log lines):

    INFO backbone.access [<correlation id>] "GET /api/orders/<id>/?wait=5" 200 412 B 1834.2 ms

A request the client gave up on before any answer is logged with status 499 (nginx's "client
closed request"), one whose application raised before answering with 500.

The same duration goes to the `http_server_request_duration_seconds` histogram, by method, URL
pattern (`route`, left in the scope by backbone/tracing.py's middleware; `unmatched` when no
pattern matched: a 404, a static file) and status: labels of bounded number, never the raw path.
"""

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import Histogram

from .correlation import HEADER, correlation_scope
from .tracing import ROUTE_SCOPE_KEY

log = logging.getLogger("backbone.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]] | Any  # Django's ASGIHandler is typed loosely

_CORRELATION_HEADER = HEADER.lower().encode()
CLIENT_CLOSED = 499

REQUEST_DURATION = Histogram(
    "http_server_request_duration_seconds",
    "Seconds from a request's first byte in to its last byte out, by method, URL pattern and status.",
    ["method", "route", "status"],
    # OpenTelemetry's advised buckets for http.server.request.duration, and long-polls' waits.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60),
)
UNMATCHED = "unmatched"
# Any other method is `_OTHER`, as OpenTelemetry's HTTP conventions ask: a client cannot mint series.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"})


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
            seconds = time.perf_counter() - started
            _observe(scope, answer, seconds)
            _log(scope, answer, seconds * 1000)


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


def _observe(scope: Scope, answer: _Answer, seconds: float) -> None:
    method = scope["method"] if scope["method"] in _METHODS else "_OTHER"
    route = scope.get(ROUTE_SCOPE_KEY, UNMATCHED)
    REQUEST_DURATION.labels(method, route, str(answer.status)).observe(seconds)


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
