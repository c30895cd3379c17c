"""Tracing on for one test: an OpenTelemetry SDK provider of the test's own, exporting to memory.

Imported by the tests that need it (browser-free, but it loads the SDK, which the shop itself
only loads when OTEL_TRACES_EXPORTER asks for it).
"""

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from backbone import tracing


@contextmanager
def spans_in_memory() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        yield exporter
    finally:
        tracing.use(None)
