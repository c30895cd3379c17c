"""Wake the relay when rows commit: LISTEN on channel `outbox`.

A statement trigger on `outbox` sends `NOTIFY outbox` in the inserting transaction, and
PostgreSQL delivers it only when (and if) that transaction commits, so the relay sleeps until
there is something to publish. A slow poll stays as a safety net.
"""

import select

import psycopg

from .backoff import StopFlag

CHANNEL = "outbox"


class OutboxListener:
    """A dedicated autocommit connection that LISTENs; `wait()` also wakes on stop."""

    def __init__(self, connection: psycopg.Connection, stop: StopFlag) -> None:
        self._connection = connection
        self._stop = stop
        connection.execute(f"LISTEN {CHANNEL}")

    def drain(self) -> int:
        """Consume the notifications received so far (without blocking); how many there were."""
        return sum(1 for _ in self._connection.notifies(timeout=0))

    def wait(self, timeout: float) -> bool:
        """Sleep until a row commits, the relay is stopped or `timeout` passes; True if woken."""
        if self._stop.is_set():
            return False
        readable, _, _ = select.select([self._connection.fileno(), self._stop.fileno()], [], [], timeout)
        return self._connection.fileno() in readable

    def close(self) -> None:
        self._connection.close()
