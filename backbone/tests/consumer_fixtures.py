"""Fixtures of the consumer runner's tests (loaded with `pytest_plugins`)."""

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from backbone.kafka import group_id
from backbone.tests.consumer_probe import (
    PROBE_TOPICS,
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
def probe_context(probe_tables: None, kafka_topics: list[str]) -> str:
    """A fresh context (and consumer group) with the probe handler, starting at the topics' end."""
    context = f"probe_{uuid.uuid4().hex[:10]}"
    register(context)
    start_group_at_end(group_id(context), PROBE_TOPICS)
    return context
