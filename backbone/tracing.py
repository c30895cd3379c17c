"""W3C trace context across the hops: HTTP request, outbox row, Kafka record, handler.

Every event carries the trace context of the code that emitted it, as the CloudEvents
distributed tracing extension (`ce_traceparent`; stored in its outbox row, sent by the relay).
A request continues the client's `traceparent` header (or starts a new trace); a handler
continues its event's, so the events it emits carry a child span's traceparent, and one
order's story is one trace. Log lines show the current traceparent next to the correlation id.

Spans go to a backend only when OpenTelemetry is configured by its standard environment
variables (OTEL_TRACES_EXPORTER, OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT, ...): see
docs/tracing.md. Without OTEL_TRACES_EXPORTER (or with `none`) the tracing SDK is never loaded
nor called: span ids are drawn here at random, and a hop costs a context variable and a regex.
"""

import logging
import os
import random
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from django.http import HttpRequest, HttpResponse

from .conf import backbone_settings
from .middleware import SyncAndAsyncMiddleware

if TYPE_CHECKING:  # imported at run time only when tracing is configured
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, SpanKind, Tracer

log = logging.getLogger(__name__)

HEADER = "traceparent"
STATE_HEADER = "tracestate"
# version-trace_id-parent_id-flags; a later version may append fields, version ff is invalid.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE_ID = "0" * 32
_ZERO_SPAN_ID = "0" * 16
_SAMPLED = "01"

# W3C tracestate: at most 32 comma-separated list members `key=value`, 512 characters in all.
_STATE_KEY = r"(?:[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})"
_STATE_MEMBER = re.compile(
    _STATE_KEY + r"=([\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e])"
)
_STATE_MAX_MEMBERS = 32
_STATE_MAX_LENGTH = 512

_traceparent: ContextVar[str | None] = ContextVar("traceparent", default=None)
# The vendors' tracestate travels with the trace, unchanged: no vendor entry is ours to add.
_tracestate: ContextVar[str | None] = ContextVar("tracestate", default=None)
# Set by configure()/use(): None means tracing is off and no SDK call is ever made.
_tracer: "Tracer | None" = None


def parse(value: str | None) -> str | None:
    """`value` as a version-00 traceparent, or None when it is not a valid one (a hostile or
    broken header is dropped, never fatal: the hop then starts a new trace)."""
    if not value:
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if (
        version == "ff"
        or (version == "00" and rest)
        or trace_id == _ZERO_TRACE_ID
        or span_id == _ZERO_SPAN_ID
    ):
        return None
    return f"00-{trace_id}-{span_id}-{flags}"


def parse_state(value: str | None) -> str | None:
    """`value` as a W3C tracestate (list members trimmed), or None when it is absent or not a
    valid one: a malformed or oversized header is dropped whole, as the spec allows."""
    if not value or len(value) > _STATE_MAX_LENGTH:
        return None
    members = [member.strip() for member in value.split(",") if member.strip()]
    keys = [member.partition("=")[0] for member in members]
    if (
        not members
        or len(members) > _STATE_MAX_MEMBERS
        or len(set(keys)) != len(keys)
        or not all(_STATE_MEMBER.fullmatch(member) for member in members)
    ):
        return None
    return ",".join(members)


def trace_id_of(traceparent: str) -> str:
    return traceparent[3:35]


def current_traceparent() -> str | None:
    """The trace context events emitted now carry; None outside any request or handler."""
    return _traceparent.get()


def current_tracestate() -> str | None:
    """The tracestate that travels with the current trace context; None when it has none."""
    return _tracestate.get()


def child_of(parent: str | None) -> str:
    """A new span's traceparent: in `parent`'s trace, or the root of a new (sampled) one."""
    # Random, not secret, ids (as OpenTelemetry's own generator): no system call per event.
    span_id = f"{random.getrandbits(64) or 1:016x}"
    if parent is None:
        return f"00-{random.getrandbits(128) or 1:032x}-{span_id}-{_SAMPLED}"
    return f"{parent[:35]}-{span_id}-{parent[53:55]}"


def enabled() -> bool:
    return _tracer is not None


@contextmanager
def span_scope(
    name: str, parent: str | None, *, kind: str, tracestate: str | None = None
) -> Iterator["Span | None"]:
    """Run a block as a span that continues `parent` (a valid traceparent or None) and its
    `tracestate`; what it emits and logs carries the span's traceparent and that tracestate.
    `kind` is an OpenTelemetry SpanKind name (`server`, `consumer`...). Yields the OpenTelemetry
    span, or None when tracing is off."""
    state_token = _tracestate.set(tracestate if parent is not None else None)
    try:
        if _tracer is None:
            token = _traceparent.set(child_of(parent))
            try:
                yield None
            finally:
                _traceparent.reset(token)
            return
        context = _context_of(parent, tracestate)
        with _tracer.start_as_current_span(name, context=context, kind=_kind(kind)) as span:
            token = _traceparent.set(_format(span))
            try:
                yield span
            finally:
                _traceparent.reset(token)
    finally:
        _tracestate.reset(state_token)


@contextmanager
def continued(traceparent: str | None, tracestate: str | None = None) -> Iterator[None]:
    """Log a block under an existing trace context, without a span of its own."""
    token = _traceparent.set(parse(traceparent))
    state_token = _tracestate.set(parse_state(tracestate) if _traceparent.get() else None)
    try:
        yield
    finally:
        _tracestate.reset(state_token)
        _traceparent.reset(token)


def start_span(name: str, parent: str | None, *, kind: str) -> "Span | None":
    """A span the caller ends itself (see end_span), e.g. from a delivery report; None when
    tracing is off, so the relay's hot path makes no call at all."""
    if _tracer is None:
        return None
    return _tracer.start_span(name, context=_context_of(parent), kind=_kind(kind))


def end_span(span: "Span", error: object | None = None) -> None:
    if error is not None:
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR, str(error)))
    span.end()


class TraceContextMiddleware(SyncAndAsyncMiddleware):
    """Each request is a span that continues the client's valid `traceparent` header or
    starts a new trace; an invalid header is ignored, as the W3C spec asks. The trace context
    is a context variable (as OpenTelemetry's): per request under async too."""

    def handle(self, request: HttpRequest) -> HttpResponse:
        parent, tracestate = _client_context(request)
        with span_scope(request.method or "HTTP", parent, kind="server", tracestate=tracestate) as span:
            response = self.respond(request)
            _answered(span, request, response)
        return response

    async def ahandle(self, request: HttpRequest) -> HttpResponse:
        parent, tracestate = _client_context(request)
        with span_scope(request.method or "HTTP", parent, kind="server", tracestate=tracestate) as span:
            response = await self.arespond(request)
            _answered(span, request, response)
        return response


def _client_context(request: HttpRequest) -> tuple[str | None, str | None]:
    """The client's traceparent and tracestate; a tracestate without a valid traceparent is
    ignored, as the W3C spec asks."""
    parent = parse(request.headers.get(HEADER))
    return parent, parse_state(request.headers.get(STATE_HEADER)) if parent else None


# Where the URL pattern a request matched is left in its ASGI scope (Django's ASGI request keeps
# the scope it was made from; the web's direct lane puts it in the WSGI environ), for the access
# log's duration histogram: the pattern, not the path,
# so its labels stay few. Absent for a request no pattern matched (404, static files).
ROUTE_SCOPE_KEY = "backbone.route"
SCOPE_ENVIRON_KEY = "asgi.scope"  # where backbone/wsgi_on_threads.py puts it


def _answered(span: "Span | None", request: HttpRequest, response: HttpResponse) -> None:
    match = request.resolver_match
    route = match.route if match is not None else None
    scope = getattr(request, "scope", None) or request.META.get(SCOPE_ENVIRON_KEY)
    if scope is not None and route is not None:
        scope[ROUTE_SCOPE_KEY] = f"/{route}"
    if span is not None:
        _describe_request(span, request, response, route or "")


def _describe_request(span: "Span", request: HttpRequest, response: HttpResponse, route: str) -> None:
    if route:
        span.update_name(f"{request.method} /{route}")
    span.set_attribute("http.request.method", request.method or "")
    span.set_attribute("http.route", f"/{route}")
    span.set_attribute("http.response.status_code", response.status_code)


def configure(argv: Sequence[str] | None = None) -> bool:
    """Trace to the exporters OTEL_TRACES_EXPORTER names (their standard entry points, e.g.
    `console`, or `otlp` once opentelemetry-exporter-otlp is installed); the rest of the SDK
    reads its own OTEL_* variables. False, and nothing imported, when tracing is not asked for."""
    names = [name.strip() for name in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",") if name.strip()]
    if not names or names == ["none"] or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = (
        {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name(argv or sys.argv)}
    )
    provider = TracerProvider(resource=Resource.create(attributes))
    for name in names:
        if name == "none":
            continue
        found = entry_points(group="opentelemetry_traces_exporter", name=name)
        if not found:
            # Tracing is an aid: a typo must not stop the shop, but it must be seen.
            log.error("OTEL_TRACES_EXPORTER names %r, which no installed package provides", name)
            continue
        exporter_class = next(iter(found)).load()
        provider.add_span_processor(BatchSpanProcessor(exporter_class()))
    trace.set_tracer_provider(provider)
    use(provider)
    return True


def use(provider: "TracerProvider | None") -> None:
    """Trace through `provider` from now on (None: tracing off). Tests pass their own."""
    global _tracer
    _tracer = provider.get_tracer("backbone") if provider is not None else None


def service_name(argv: Sequence[str]) -> str:
    """The default service.name of this process, after BACKBONE["SERVICE_NAME_PREFIX"]:
    <prefix>-web, <prefix>-relay, <prefix>-<context>, <prefix>-worker or <prefix>."""
    prefix = backbone_settings.SERVICE_NAME_PREFIX
    program = os.path.basename(argv[0]) if argv else ""
    if program in ("gunicorn", "celery"):
        return f"{prefix}-web" if program == "gunicorn" else f"{prefix}-worker"
    if len(argv) > 2 and argv[1] == "consume":
        return f"{prefix}-{argv[2]}"
    if len(argv) > 1 and argv[1] in ("relay", "runserver"):
        return f"{prefix}-web" if argv[1] == "runserver" else f"{prefix}-relay"
    return prefix


def _context_of(parent: str | None, tracestate: str | None = None) -> "Context | None":
    if parent is None:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier = {HEADER: parent, **({STATE_HEADER: tracestate} if tracestate else {})}
    return TraceContextTextMapPropagator().extract(carrier)


def _kind(name: str) -> "SpanKind":
    from opentelemetry.trace import SpanKind

    return SpanKind[name.upper()]


def _format(span: "Span") -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
