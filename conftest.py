"""Suite-wide set-up: each run is isolated, and a test checks only the services it needs.

Each test session works in its own Kafka namespace (a topic and group name prefix) and its own
test database (`test_shop_<id>`, unless TEST_DATABASE_NAME names one), so two runs never see
each other's records; both are removed at the end of the session.

Tiers: a test that uses the database (the `django_db` marker or a db fixture), the
`postgres_service`/`kafka_service`/`redis_service` fixtures or the `e2e` marker is in the services tier; every
other test is marked `fast` and runs with no service at all (`make test-fast` runs `-m fast`).
When the selected tests include the services tier, the services are checked once, after
collection, and a missing one ends the run with one line (exit status 3) instead of a traceback
in every test.
"""

import os
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from django.conf import settings

from backbone.conf import backbone_settings
from backbone.preflight import ServiceUnavailable, require
from backbone.provisioning import delete_namespace

# Fixtures through which a test reaches a service; `django_db_setup` is below every db fixture.
SERVICE_FIXTURES = frozenset({"django_db_setup", "postgres_service", "kafka_service", "redis_service"})

_run = {"services_checked": False}


def pytest_configure(config: pytest.Config) -> None:
    run_id = uuid.uuid4().hex[:8]
    namespace = f"test-{run_id}."
    settings.BACKBONE = {**settings.BACKBONE, "KAFKA_NAMESPACE": namespace}
    # Subprocesses (relay, consumers, Celery) inherit it through the environment.
    os.environ["KAFKA_NAMESPACE"] = namespace
    # pytest-django creates the test database later, under this name; subprocesses get it
    # through DATABASE_URL, which the tests build from the connection's settings.
    test_settings = settings.DATABASES["default"].setdefault("TEST", {})
    test_settings["NAME"] = os.environ.get("TEST_DATABASE_NAME") or f"test_shop_{run_id}"
    # Rate-limit counters in Redis are the session's own too, and the limits are out of the way
    # (many tests log in and order from 127.0.0.1); the throttling tests set their own rates.
    settings.CACHES["default"]["KEY_PREFIX"] = os.environ["CACHE_KEY_PREFIX"] = namespace
    # The session's Celery queue: the settings named it before the namespace was known, and a
    # task this process enqueues must reach the worker its test starts, not another session's.
    queue = f"{namespace}celery"
    settings.CELERY_TASK_DEFAULT_QUEUE = os.environ["CELERY_TASK_DEFAULT_QUEUE"] = queue
    _empty_tables_by_delete()
    for scope in settings.THROTTLE_RATES:
        settings.THROTTLE_RATES[scope] = os.environ[f"THROTTLE_{scope.upper()}_RATE"] = "100000/minute"


def _empty_tables_by_delete() -> None:
    """After each transactional test Django empties every table (the `flush` command) with one
    TRUNCATE, which costs about a second here for thirty tables: each one gets new files. DELETE
    of the few rows a test leaves takes milliseconds. The foreign keys Django creates are
    deferrable, so the order of the statements does not matter; a flush that must also reset
    the sequences keeps TRUNCATE ... RESTART IDENTITY."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    truncate = DatabaseOperations.sql_flush

    def sql_flush(
        self: DatabaseOperations,
        style: Any,
        tables: Sequence[str],
        *,
        reset_sequences: bool = False,
        allow_cascade: bool = False,
    ) -> list[str]:
        if reset_sequences or not tables:
            return truncate(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        deletes = [
            f"{style.SQL_KEYWORD('DELETE FROM')} {style.SQL_FIELD(self.quote_name(t))};" for t in tables
        ]
        return ["SET CONSTRAINTS ALL DEFERRED;", *deletes]

    DatabaseOperations.sql_flush = sql_flush  # type: ignore[method-assign]


def needs_services(item: pytest.Item) -> bool:
    """The database, a service fixture, or `e2e` (real processes, or a broker of the test's own)."""
    fixtures = set(getattr(item, "fixturenames", ()))
    markers = {"django_db", "e2e"} & {mark.name for mark in item.iter_markers()}
    return bool(markers or fixtures & SERVICE_FIXTURES)


# Before pytest's own `-m` deselection, which reads the marker.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not needs_services(item):
            item.add_marker(pytest.mark.fast)


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly or not any(needs_services(item) for item in session.items):
        return
    # The services tier as a whole runs against all three (a db test may also publish to Kafka
    # or enqueue a Celery task), so they are checked together, once.
    _require()
    _run["services_checked"] = True


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Delete the session's topics and consumer groups: a development broker outlives many runs."""
    if _run["services_checked"]:
        left = delete_namespace(backbone_settings.KAFKA_NAMESPACE)
        if left:
            namespace = backbone_settings.KAFKA_NAMESPACE
            print(f"\nwarning: could not delete {', '.join(left)} of Kafka namespace {namespace}")


def _require(*names: str) -> None:
    try:
        require(*names)
    except ServiceUnavailable as error:
        pytest.exit(str(error), returncode=3)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """Before pytest-django creates the test database: one line if PostgreSQL does not answer."""
    _require("postgres")


@pytest.fixture(scope="session")
def postgres_service() -> None:
    """Request it in a test that uses PostgreSQL without the test database."""
    _require("postgres")


@pytest.fixture(scope="session")
def kafka_service() -> None:
    """Request it in a test that uses Kafka without the database: it puts it in the services tier."""
    _require("kafka")


@pytest.fixture(scope="session")
def redis_service() -> None:
    """Request it in a test that uses Redis without the database: it puts it in the services tier."""
    _require("redis")


@pytest.fixture(scope="session")
def kafka_topics(kafka_service: None) -> list[str]:
    """The fixed topics and dead-letter topics of this session's namespace."""
    from backbone.provisioning import ensure_topics

    return sorted(ensure_topics(partitions=3))
