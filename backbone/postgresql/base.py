"""Django's PostgreSQL backend, whose pooled checkout replaces dead connections without a pause,
and whose health check commits nothing.

The web process takes its connections from a psycopg pool (DATABASES OPTIONS "pool",
config/settings/base.py). After a PostgreSQL restart, failover or pg_terminate_backend every idle
connection in it is dead. psycopg_pool's own `check` callback notices each one, but sleeps with a
backoff (1 s, 2 s, 4 s...) before it tries the next: with a few dead connections a request waited
longer than the pool's timeout and answered 500. Here the pool checks nothing itself; the checkout
tests the connection with `ConnectionPool.check_connection` (one empty query) and, when it is dead,
hands it back (the pool discards it and opens a new one) and takes the next, at once: a failover
costs each worker a round trip per dead connection, never an error.
"""

from typing import Any

import django
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base
from psycopg import Connection, OperationalError
from psycopg_pool import ConnectionPool

# `DatabaseWrapper.pool` (Django 5.1+) is not documented API: an upgrade that renames it must stop
# the web at start-up, when settings load this engine, not fail a request.
if not isinstance(getattr(base.DatabaseWrapper, "pool", None), property):
    raise ImproperlyConfigured(
        f"backbone.postgresql needs django.db.backends.postgresql's DatabaseWrapper.pool, which "
        f"Django {django.get_version()} does not have: pin Django 5.2 or adapt backbone/postgresql/base.py"
    )


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        """Django's health check (CONN_HEALTH_CHECKS: Celery asks before every task) with an
        empty query: the same round trip on the same session, but no transaction, where
        `SELECT 1` was a commit of its own per task."""
        if self.connection is None:
            return False
        try:
            self.connection.execute("")
        except OperationalError:
            return False
        return True

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        pool: ConnectionPool[Connection[Any]] | None = self.pool  # type: ignore[attr-defined]
        if pool is None:
            return super().get_new_connection(conn_params)
        # Every connection the pool holds may be dead, and then one more it opened meanwhile.
        for _ in range(pool.max_size):
            connection = super().get_new_connection(conn_params)
            try:
                ConnectionPool.check_connection(connection)
            except OperationalError:
                pool.putconn(connection)  # broken: the pool drops it and opens a replacement
                continue
            return connection
        return super().get_new_connection(conn_params)
