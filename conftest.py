"""Suite-wide set-up: the tests run against the real services, so check them first.

Each test session works in its own Kafka namespace (a topic and group name prefix), so runs
never see each other's records, and the fixed topics are provisioned in it once.
"""

import os
import uuid

import pytest
from django.conf import settings

from backbone.preflight import ServiceUnavailable, require


def pytest_sessionstart(session: pytest.Session) -> None:
    try:
        require()
    except ServiceUnavailable as error:
        pytest.exit(str(error), returncode=3)
    namespace = f"test-{uuid.uuid4().hex[:8]}."
    settings.KAFKA_NAMESPACE = namespace
    # Subprocesses (relay, consumers, Celery) inherit it through the environment.
    os.environ["KAFKA_NAMESPACE"] = namespace


@pytest.fixture(scope="session")
def kafka_topics() -> list[str]:
    """The fixed topics and dead-letter topics of this session's namespace."""
    from backbone.provisioning import ensure_topics

    return sorted(ensure_topics(partitions=3))
