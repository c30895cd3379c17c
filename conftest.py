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
    # Rate-limit counters in Redis are the session's own too, and the limits are out of the way
    # (many tests log in and order from 127.0.0.1); the throttling tests set their own rates.
    settings.CACHES["default"]["KEY_PREFIX"] = os.environ["CACHE_KEY_PREFIX"] = namespace
    for scope in settings.THROTTLE_RATES:
        settings.THROTTLE_RATES[scope] = os.environ[f"THROTTLE_{scope.upper()}_RATE"] = "100000/minute"


@pytest.fixture(scope="session")
def kafka_topics() -> list[str]:
    """The fixed topics and dead-letter topics of this session's namespace."""
    from backbone.provisioning import ensure_topics

    return sorted(ensure_topics(partitions=3))
