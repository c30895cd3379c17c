"""Fixtures of the consumer runner's tests (loaded with `pytest_plugins`)."""

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from backbone.contracts import Event
from backbone.kafka import group_id, physical_topic
from backbone.tests.consumer_probe import (
    PROBE_TOPICS,
    MemoryKafka,
    ProbeContextFactory,
    ProbeRecorded,
    ProbeShipped,
    create_tables,
    drop_tables,
    register,
    start_group_at_end,
)


@pytest.fixture(scope="session")
def probe_tables(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    with django_db_blocker.unblock():
        create_tables()
    yield
    with django_db_blocker.unblock():
        drop_tables()


@pytest.fixture
def make_probe_context(probe_tables: None, kafka_topics: list[str]) -> ProbeContextFactory:
    """Fresh contexts (and consumer groups) with the probe handler, starting at the topics' end."""

    def make(events: tuple[type[Event], ...] = (ProbeRecorded, ProbeShipped), *, batch: bool = False) -> str:
        context = f"probe_{uuid.uuid4().hex[:10]}"
        register(context, events, batch=batch)
        start_group_at_end(group_id(context), PROBE_TOPICS)
        return context

    return make


@pytest.fixture
def probe_context(make_probe_context: ProbeContextFactory) -> str:
    return make_probe_context()


@pytest.fixture
def batch_probe_context(make_probe_context: ProbeContextFactory) -> str:
    """A context whose probe handler is a batch handler (`@subscribe_batch`)."""
    return make_probe_context(batch=True)


@pytest.fixture
def memory_kafka() -> MemoryKafka:
    """A fresh in-memory broker with the probe helpers (send_event, consume_until_caught_up...)."""
    return MemoryKafka()


@pytest.fixture
def make_memory_probe_context(probe_tables: None, memory_kafka: MemoryKafka) -> ProbeContextFactory:
    """`make_probe_context` on `memory_kafka`: the group starts at the topics' end there."""

    def make(events: tuple[type[Event], ...] = (ProbeRecorded, ProbeShipped), *, batch: bool = False) -> str:
        context = f"probe_{uuid.uuid4().hex[:10]}"
        register(context, events, batch=batch)
        memory_kafka.broker.start_group_at_end(group_id(context), [physical_topic(t) for t in PROBE_TOPICS])
        return context

    return make


@pytest.fixture
def memory_probe_context(make_memory_probe_context: ProbeContextFactory) -> str:
    """`probe_context` on `memory_kafka`."""
    return make_memory_probe_context()
