"""Consumer spans on real records from Kafka: the trace context is read from the plain W3C
`traceparent` header first (what OpenTelemetry's Kafka instrumentations write), from the
CloudEvents `ce_traceparent` extension for older records, and the span carries OpenTelemetry's
messaging attributes."""

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from backbone.kafka import group_id
from backbone.models import InboxEntry
from backbone.testing import envelope_for
from backbone.testing.spans import spans_in_memory
from backbone.tests.consumer_probe import ProbeRecorded, consume_until_caught_up, send

pytestmark = pytest.mark.django_db(transaction=True)
pytest_plugins = ["backbone.tests.consumer_fixtures"]

PLAIN = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
EXTENSION = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with spans_in_memory() as exporter:
        yield exporter


def send_with(event: ProbeRecorded, trace_headers: list[tuple[str, bytes]]) -> str:
    """Send `event` as another producer would, with `trace_headers` as its only trace context."""
    envelope = envelope_for(event)
    send(event.topic, key=event.key, value=event.to_json(), headers=[*envelope.headers(), *trace_headers])
    return envelope.id


def span_of(spans: InMemorySpanExporter, event_id: str) -> ReadableSpan:
    (span,) = [
        s for s in spans.get_finished_spans() if (s.attributes or {}).get("messaging.message.id") == event_id
    ]
    return span


def parent_of(span: ReadableSpan) -> str:
    assert span.parent is not None
    return f"00-{span.parent.trace_id:032x}-{span.parent.span_id:016x}-01"


def test_the_plain_traceparent_is_preferred_and_the_extension_still_read(
    probe_context: str, spans: InMemorySpanExporter
) -> None:
    both = send_with(
        ProbeRecorded(probe_key="tp-both", seq=1, amount=1),
        [("traceparent", PLAIN.encode()), ("ce_traceparent", EXTENSION.encode())],
    )
    plain = send_with(ProbeRecorded(probe_key="tp-plain", seq=1, amount=1), [("traceparent", PLAIN.encode())])
    old = send_with(
        ProbeRecorded(probe_key="tp-old", seq=1, amount=1), [("ce_traceparent", EXTENSION.encode())]
    )

    assert consume_until_caught_up(probe_context).handled == 3

    assert parent_of(span_of(spans, both)) == PLAIN
    assert parent_of(span_of(spans, plain)) == PLAIN
    assert parent_of(span_of(spans, old)) == EXTENSION


def test_a_consumer_span_follows_the_opentelemetry_messaging_conventions(
    probe_context: str, spans: InMemorySpanExporter
) -> None:
    event_id = send_with(
        ProbeRecorded(probe_key="tp-attrs", seq=1, amount=1), [("traceparent", PLAIN.encode())]
    )

    consume_until_caught_up(probe_context)

    span = span_of(spans, event_id)
    entry = InboxEntry.objects.get(consumer_group=group_id(probe_context), event_id=event_id)
    assert span.name == "process orders"
    assert span.kind is SpanKind.CONSUMER
    assert dict(span.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "orders",
        "messaging.consumer.group.name": group_id(probe_context),
        "messaging.destination.partition.id": str(entry.partition),
        "messaging.kafka.offset": entry.offset,
        "messaging.kafka.message.key": "tp-attrs",
        "messaging.message.id": event_id,
        "messaging.message.conversation_id": entry.correlation_id,
        "cloudevents.event_type": "orders.ProbeRecorded",
    }


STATE = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"


def test_the_tracestate_is_continued_with_the_traceparent_it_came_with(
    probe_context: str, spans: InMemorySpanExporter
) -> None:
    plain = send_with(
        ProbeRecorded(probe_key="ts-plain", seq=1, amount=1),
        [("traceparent", PLAIN.encode()), ("tracestate", STATE.encode())],
    )
    extension = send_with(
        ProbeRecorded(probe_key="ts-ext", seq=1, amount=1),
        [("ce_traceparent", EXTENSION.encode()), ("ce_tracestate", STATE.encode())],
    )
    orphan = send_with(
        ProbeRecorded(probe_key="ts-orphan", seq=1, amount=1), [("tracestate", STATE.encode())]
    )

    assert consume_until_caught_up(probe_context).handled == 3

    for event_id in (plain, extension):
        parent = span_of(spans, event_id).parent
        assert parent is not None
        assert parent.trace_state.to_header() == STATE
    assert span_of(spans, orphan).parent is None, "a tracestate without its traceparent is ignored"
