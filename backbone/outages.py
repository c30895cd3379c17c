"""Waiting out a PostgreSQL outage in a long-lived process (the context consumers).

Django opens a connection per request, so the web process recovers from a PostgreSQL restart
or failover by itself. A consumer holds one connection for hours: once PostgreSQL terminated
its session, every query fails. The consumer then rolls back the batch in hand, drops the
broken connection, waits with backoff (one log line per attempt) and applies the same batch
again on a new connection; offsets never move past records that did not commit.
"""

import contextlib
import logging
import time
from collections.abc import Callable

from django.db import DatabaseError, InterfaceError, OperationalError, connection

from .backoff import jittered

log = logging.getLogger(__name__)

# What Django raises when PostgreSQL is unreachable or the session died (psycopg's errors,
# wrapped). Also serialization failures and deadlocks: applying the batch again is right then too.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)


def connection_lost(error: BaseException) -> bool:
    """Whether `error` means the session is gone, rather than a failure of the statement.

    A handler that hits a terminated session must not be retried and dead-lettered like a
    broken handler: the database is away, not the event bad.
    """
    if not isinstance(error, DATABASE_UNAVAILABLE):
        return False
    raw = connection.connection
    return raw is None or bool(raw.closed) or bool(getattr(raw, "broken", False))


class DatabaseOutage:
    """Backoff and log lines of one process while PostgreSQL is away."""

    def __init__(
        self,
        name: str,
        *,
        pause: Callable[[float], None],
        first_delay: float = 1.0,
        max_delay: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name = name
        self._pause = pause
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._clock = clock
        self._failures = 0
        self._since: float | None = None

    def wait(self, error: BaseException, *, records: int) -> None:
        """Log the outage, drop the broken connection and sleep before the next attempt."""
        delay = jittered(min(self._first_delay * 2**self._failures, self._max_delay))
        self._failures += 1
        if self._since is None:
            self._since = self._clock()
        log.warning(
            "%s: PostgreSQL unavailable (%s); %d record(s) rolled back, applying them again in %.1fs",
            self._name,
            _first_line(error),
            records,
            delay,
        )
        # The next query opens a new connection instead of failing on the dead one.
        with contextlib.suppress(DatabaseError):
            connection.close()
        self._pause(delay)

    def recovered(self) -> None:
        """Called after a batch committed: say so once if PostgreSQL was away."""
        if self._since is None:
            return
        log.info(
            "%s: PostgreSQL is back after %.1f s (%d failed attempt(s)); carrying on",
            self._name,
            self._clock() - self._since,
            self._failures,
        )
        self._failures, self._since = 0, None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
