"""One order, one trace: the API request, the relay's publish and the consumer's handling are
spans of the client's trace, and what the handler emits carries a child span's traceparent.

The request runs in-process with OpenTelemetry's in-memory exporter; the relay and the Stock
consumer are the real `manage.py` processes, configured only by OTEL_TRACES_EXPORTER=console,
and their spans are read back from what they print.
"""

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rest_framework.test import APIClient

from backbone.kafka import group_id
from backbone.testing.spans import spans_in_memory
from backbone.tests.consumer_probe import start_group_at_end, subprocess_env
from orders.models import Order
from orders.tests.factories import make_user, stock_level
from outbox.models import OutboxRecord

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def web_spans() -> Iterator[InMemorySpanExporter]:
    with spans_in_memory() as exporter:
        yield exporter


def run_traced(*command: str) -> list[dict[str, Any]]:
    """Run a shop process with OpenTelemetry's console exporter; the spans it printed."""
    done = subprocess.run(
        [sys.executable, "manage.py", *command],
        cwd=settings.BASE_DIR,
        env=subprocess_env(OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME=f"test-{command[0]}"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return spans_in(done.stdout)


def spans_in(text: str) -> list[dict[str, Any]]:
    """The console exporter prints one indented JSON object per span."""
    decoder, spans, position = json.JSONDecoder(), [], text.find("{")
    while position != -1:
        span, end = decoder.raw_decode(text, position)
        spans.append(span)
        position = text.find("{", end)
    return spans


def hex_id(value: str) -> str:
    return value.removeprefix("0x")


def test_an_order_is_one_trace_from_the_request_through_relay_and_consumer(
    kafka_topics: list[str], web_spans: InMemorySpanExporter
) -> None:
    start_group_at_end(group_id("stock"), ("orders",))
    stock_level("TR-1", available=5, price="12.00")
    client = APIClient()
    client.force_authenticate(make_user("trace"))

    response = client.post(
        "/api/orders/",
        {"lines": [{"sku": "TR-1", "quantity": 1}], "payment_token": "tok_visa"},
        format="json",
        HTTP_TRACEPARENT=f"00-{TRACE_ID}-{CLIENT_SPAN}-01",
    )

    assert response.status_code == 202, response.content
    order = Order.objects.get()
    # The web: a server span, child of the client's, in whose context OrderRequested was emitted.
    (server,) = [span for span in web_spans.get_finished_spans() if span.name == "POST /api/orders/"]
    server_span = f"{server.context.span_id:016x}"
    assert (f"{server.context.trace_id:032x}", f"{server.parent.span_id:016x}") == (TRACE_ID, CLIENT_SPAN)
    requested = OutboxRecord.objects.get(key=str(order.id), event_type="orders.OrderRequested")
    assert requested.traceparent == f"00-{TRACE_ID}-{server_span}-01"

    # The relay: a producer span under the request's, ended by the delivery report.
    relay_spans = run_traced("relay", "--once")
    (publish,) = [span for span in relay_spans if span["name"] == "send orders"]
    assert (hex_id(publish["context"]["trace_id"]), hex_id(publish["parent_id"])) == (TRACE_ID, server_span)
    assert publish["kind"] == "SpanKind.PRODUCER"
    assert publish["attributes"]["messaging.message.id"] == str(requested.event_id)

    # The consumer: the handler's span continues the event's trace context from ce_traceparent.
    consumer_spans = run_traced("consume", "stock", "--once", "--idle-exit", "5")
    (process,) = [
        span
        for span in consumer_spans
        if span["name"] == "process orders"
        and span["attributes"].get("cloudevents.event_type") == "orders.OrderRequested"
    ]
    assert (hex_id(process["context"]["trace_id"]), hex_id(process["parent_id"])) == (TRACE_ID, server_span)
    assert process["kind"] == "SpanKind.CONSUMER"

    # What the handler emitted carries its span's traceparent: the next hop continues the trace.
    # (Stock does not know the product, so its answer is StockReservationFailed.)
    answer = OutboxRecord.objects.get(key=str(order.id), source="/stock")
    assert answer.traceparent == f"00-{TRACE_ID}-{hex_id(process['context']['span_id'])}-01"
