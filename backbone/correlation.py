"""Correlation and causation ids that follow one order's story across contexts.

An API request starts a correlation with an id of the server's; a handler runs inside the scope
of the event it handles, so every event it emits inherits that event's correlation id and takes
its `ce_id` as causation id. Log records carry the correlation id.

A client's `X-Correlation-ID` is never a story's id: another customer could send the same one
and join the two orders' stories. It is kept as the request's *client trace id*,
a log field (`client=<id>`) only, so a client's own trace can still be found in the logs.

A batch handler handles many events, of many stories, at once: inside its `batch_scope()`
there is no current story, and asking for one (as emit() does) raises NoSingleStoryError.
"""

import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse

from .middleware import SyncAndAsyncMiddleware
from .tracing import current_traceparent

HEADER = "X-Correlation-ID"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

_correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
_causation_id: ContextVar[str | None] = ContextVar("causation_id", default=None)
_batch_handler: ContextVar[str | None] = ContextVar("batch_handler", default=None)
_client_trace_id: ContextVar[str | None] = ContextVar("client_trace_id", default=None)


class NoSingleStoryError(RuntimeError):
    """Code running for a whole batch of events asked which one story it belongs to."""


def new_id() -> str:
    return str(uuid.uuid4())


def current_correlation_id() -> str | None:
    _ensure_single_story()
    return _correlation_id.get()


def current_causation_id() -> str | None:
    _ensure_single_story()
    return _causation_id.get()


def _ensure_single_story() -> None:
    handler = _batch_handler.get()
    if handler is not None:
        raise NoSingleStoryError(
            f"batch handler {handler} handles many events at once, so what it does has no single "
            "correlation or causation id: it must not emit events (use @subscribe for that)"
        )


@contextmanager
def correlation_scope(correlation_id: str | None = None, causation_id: str | None = None) -> Iterator[str]:
    """Run a block as part of one story: a new one unless a correlation id is given."""
    correlation_id = correlation_id or new_id()
    correlation_token = _correlation_id.set(correlation_id)
    causation_token = _causation_id.set(causation_id)
    try:
        yield correlation_id
    finally:
        _causation_id.reset(causation_token)
        _correlation_id.reset(correlation_token)


@contextmanager
def batch_scope(handler_name: str) -> Iterator[None]:
    """Run a batch handler outside any story: log lines show `-`, emit() raises."""
    correlation_token = _correlation_id.set(None)
    causation_token = _causation_id.set(None)
    batch_token = _batch_handler.set(handler_name)
    try:
        yield
    finally:
        _batch_handler.reset(batch_token)
        _causation_id.reset(causation_token)
        _correlation_id.reset(correlation_token)


class CorrelationIdMiddleware(SyncAndAsyncMiddleware):
    """Each request starts a story of its own, whose id the response header names; a valid
    `X-Correlation-ID` from the client is only logged with it, as the client trace id.

    The ids are context variables: an async request runs in a task (and the threads it hands
    sync code to) with a copy of the context of its own, so concurrent requests never see each
    other's ids, and log lines of its sync code carry its ids too."""

    def handle(self, request: HttpRequest) -> HttpResponse:
        with request_scope(request) as correlation_id:
            response = self.respond(request)
        response[HEADER] = correlation_id
        return response

    async def ahandle(self, request: HttpRequest) -> HttpResponse:
        with request_scope(request) as correlation_id:
            response = await self.arespond(request)
        response[HEADER] = correlation_id
        return response


@contextmanager
def request_scope(request: HttpRequest) -> Iterator[str]:
    """A new story for the request, logged with the client's valid `X-Correlation-ID`."""
    incoming = request.headers.get(HEADER, "")
    trace_token = _client_trace_id.set(incoming if _VALID_ID.match(incoming) else None)
    try:
        with correlation_scope() as correlation_id:
            yield correlation_id
    finally:
        _client_trace_id.reset(trace_token)


class CorrelationIdFilter(logging.Filter):
    """Adds `correlation_id` (`-` outside a story), `traceparent` (` traceparent=<W3C trace
    context>` inside a request or handler, else empty) and `client_trace` (` client=<id>` when
    the client sent an `X-Correlation-ID`, else empty) to every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = _correlation_id.get() or "-"
        traceparent = current_traceparent()
        record.traceparent = f" traceparent={traceparent}" if traceparent else ""
        client_trace_id = _client_trace_id.get()
        record.client_trace = f" client={client_trace_id}" if client_trace_id else ""
        return True
