"""Django's connection health check (CONN_HEALTH_CHECKS; Celery's worker asks before every
task) is a round trip that commits nothing, and still finds a session that ended. (That an
empty query runs no transaction, by PostgreSQL's own count: outbox/tests/test_leader_commits.py.)"""

import pytest
from django.db import connection

from backbone.testing.commits import counting
from outbox.relay import database_connector

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_health_check_commits_nothing_and_sees_an_ended_session() -> None:
    connection.ensure_connection()
    with counting() as commits:
        assert all(connection.is_usable() for _ in range(5))
    assert commits == []
    with database_connector(connection.settings_dict)() as monitor:
        monitor.execute("SELECT pg_terminate_backend(%s)", (connection.connection.info.backend_pid,))
    assert not connection.is_usable()
    connection.close()
