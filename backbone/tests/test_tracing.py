"""W3C trace context without services: parsing, the envelope's `ce_traceparent`, spans that
continue a parent with and without OpenTelemetry, and the traceparent in log lines."""

import logging
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from backbone import tracing
from backbone.correlation import CorrelationIdFilter, correlation_scope
from backbone.envelope import Envelope
from backbone.testing.settings import override_backbone
from backbone.testing.spans import spans_in_memory

ATTRIBUTES = {"id": "e1", "type": "orders.X", "source": "/orders", "time": "t", "data_version": 1}
PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on, through an SDK provider of the test's own, exporting to memory."""
    with spans_in_memory() as exporter:
        yield exporter


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (PARENT, PARENT),
        (f" {PARENT} ", PARENT),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", PARENT),  # a later version
        (f"{PARENT}-extra", None),  # version 00 has exactly four fields
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", None),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", None),  # upper case is invalid
        ("not a traceparent", None),
        ("", None),
        (None, None),
    ],
)
def test_only_a_valid_w3c_traceparent_is_continued(value: str | None, expected: str | None) -> None:
    assert tracing.parse(value) == expected


def test_the_envelope_carries_the_traceparent_as_the_cloudevents_tracing_extension() -> None:
    envelope = Envelope(**ATTRIBUTES, correlation_id="c", traceparent=PARENT)

    headers = dict(envelope.headers())

    assert headers["ce_traceparent"] == PARENT.encode()
    assert Envelope.from_headers(envelope.headers()).traceparent == PARENT


def test_a_record_with_a_broken_traceparent_is_still_a_valid_event() -> None:
    envelope = Envelope(**ATTRIBUTES, correlation_id="c")
    headers = [*envelope.headers(), ("ce_traceparent", b"00-garbage")]

    assert "ce_traceparent" not in dict(envelope.headers())
    assert Envelope.from_headers(headers).traceparent is None


def test_without_opentelemetry_a_span_is_a_new_span_id_in_the_parents_trace() -> None:
    with tracing.span_scope("process orders.X", PARENT, kind="consumer") as span:
        child = tracing.current_traceparent()
    with tracing.span_scope("POST", None, kind="server"):
        root = tracing.current_traceparent()

    assert span is None
    assert child is not None
    assert tracing.parse(child) == child
    assert (child[:35], child[-2:]) == (PARENT[:35], "01")
    assert child[36:52] != PARENT[36:52]
    assert root is not None
    assert tracing.parse(root) == root
    assert root[3:35] != TRACE_ID
    assert tracing.current_traceparent() is None


def test_with_opentelemetry_a_span_continues_its_parent_and_is_the_current_trace_context(
    spans: InMemorySpanExporter,
) -> None:
    with tracing.span_scope("process orders.X", PARENT, kind="consumer"):
        inside = tracing.current_traceparent()

    (span,) = spans.get_finished_spans()
    assert span.kind is SpanKind.CONSUMER
    assert span.parent is not None
    assert f"{span.parent.span_id:016x}" == PARENT[36:52]
    assert inside == f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-01"
    assert inside[3:35] == TRACE_ID


def test_log_lines_show_the_traceparent_next_to_the_correlation_id() -> None:
    record = logging.LogRecord("shop", logging.INFO, __file__, 1, "placed", None, None)
    with correlation_scope("story-1"), tracing.span_scope("POST", PARENT, kind="server"):
        traceparent = tracing.current_traceparent()
        CorrelationIdFilter().filter(record)

    assert (record.correlation_id, record.traceparent) == ("story-1", f" traceparent={traceparent}")

    outside = logging.LogRecord("shop", logging.INFO, __file__, 1, "idle", None, None)
    CorrelationIdFilter().filter(outside)
    assert (outside.correlation_id, outside.traceparent) == ("-", "")


def test_the_exporters_come_from_the_standard_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    assert tracing.configure(["manage.py", "relay"]) is False
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert tracing.configure(["manage.py", "relay"]) is False
    assert not tracing.enabled()

    assert tracing.service_name(["manage.py", "consume", "stock"]) == "shop-stock"
    assert tracing.service_name(["/app/.venv/bin/gunicorn", "config.wsgi"]) == "shop-web"
    assert tracing.service_name(["manage.py", "relay", "--once"]) == "shop-relay"


def test_service_names_take_the_projects_prefix() -> None:
    """The shop sets BACKBONE["SERVICE_NAME_PREFIX"] = "shop"; the library's own is neutral."""
    with override_backbone(SERVICE_NAME_PREFIX="billing"):
        assert tracing.service_name(["manage.py", "consume", "invoices"]) == "billing-invoices"
        assert tracing.service_name(["celery", "-A", "config", "worker"]) == "billing-worker"
    with override_settings(BACKBONE={}):
        assert tracing.service_name(["manage.py", "relay"]) == "backbone-relay"


OFF_PROBE = """
import sys
from datetime import UTC, datetime

import django

django.setup()
from backbone import tracing
from backbone.envelope import Envelope
from outbox.store import PendingRow

TRACECONTEXT = "opentelemetry.trace.propagation.tracecontext"
now = datetime.now(UTC)
envelope = Envelope("e1", "orders.X", "/orders", "2026-01-01T00:00:00Z", 1, "c", None, sys.argv[1])
row = PendingRow(1, "orders", "k", "{}", envelope.headers(), now.timestamp())
parent = Envelope.from_headers(row.headers).traceparent
with tracing.span_scope("process orders.X", parent, kind="consumer"):
    assert tracing.current_traceparent()[:35] == sys.argv[1][:35]
assert tracing.start_span("publish orders", sys.argv[1], kind="producer") is None
# redis-py imports parts of OpenTelemetry's API and metrics SDK when installed; tracing's are ours.
print(sorted(name for name in sys.modules if name.startswith(("opentelemetry.sdk.trace", TRACECONTEXT))))
"""


def test_without_otel_variables_no_tracing_sdk_is_loaded_or_called() -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", OFF_PROBE, PARENT],
        cwd=settings.BASE_DIR,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("congo=t61rcWkgMzE", "congo=t61rcWkgMzE"),
        (" rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE ", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
        ("tenant@vendor=opaque value", "tenant@vendor=opaque value"),
        ("rojo=1,rojo=2", None),  # a key twice
        ("Rojo=1", None),  # keys are lower case
        ("rojo=a,b", None),  # a member without "="
        ("rojo=" + "x" * 600, None),  # over 512 characters: ten times a usual header
        (",".join(f"k{n}=v" for n in range(33)), None),  # over 32 members
        ("rojo=tab\there", None),
        ("", None),
        (None, None),
    ],
)
def test_only_a_valid_w3c_tracestate_is_passed_on(value: str | None, expected: str | None) -> None:
    assert tracing.parse_state(value) == expected


def test_a_request_passes_the_clients_tracestate_to_what_it_emits_only_with_its_traceparent() -> None:
    state = "rojo=00f067aa0ba902b7"
    seen: list[str | None] = []

    def view(request: HttpRequest) -> HttpResponse:
        seen.append(tracing.current_tracestate())
        return HttpResponse()

    middleware = tracing.TraceContextMiddleware(view)
    factory = RequestFactory()
    middleware(factory.get("/", HTTP_TRACEPARENT=PARENT, HTTP_TRACESTATE=state))
    middleware(factory.get("/", HTTP_TRACESTATE=state))
    middleware(factory.get("/", HTTP_TRACEPARENT=PARENT, HTTP_TRACESTATE="Bad State"))

    assert seen == [state, None, None]
    assert tracing.current_tracestate() is None, "the request's tracestate stays in the request"
