"""Parameters are bound on the server, so a statement a connection repeats is prepared once
and PostgreSQL no longer parses and plans it at every call (docs/benchmarks.md)."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection


@pytest.mark.django_db
def test_a_statement_repeated_on_a_connection_is_prepared_on_the_server() -> None:
    for _ in range(6):  # psycopg prepares once a connection has run a statement 5 times
        list(get_user_model().objects.filter(username="nobody"))

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql AND statement LIKE %s",
            ['%FROM "auth_user"%'],
        )
        (prepared,) = cursor.fetchone()
    assert prepared == 1
