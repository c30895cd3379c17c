"""Exactly one active relay per database: a PostgreSQL session advisory lock.

The lock lives as long as the session that took it, on a connection of its own: when the
leader dies, even by `kill -9`, its connection closes, PostgreSQL frees the lock, and a relay
standing by takes over within a second or so. TCP keepalives make a silently vanished leader
(network partition) let go as well. A leader that is there but frozen keeps its session; a
standby ends it when it stalls (`stalls.py`).
"""

import logging
from collections.abc import Callable

import psycopg

log = logging.getLogger(__name__)

# "outbox" in ASCII. Advisory locks are per database, so each database has its own leader.
RELAY_LOCK_KEY = 0x6F7574626F78


class LeadershipLost(RuntimeError):
    """The lock's session ended: another relay may be the leader now, so stop publishing."""


class AnotherLeader(RuntimeError):
    """Another relay holds the lock (raised instead of standing by, for `--once`)."""


class LeaderLock:
    def __init__(
        self,
        connect: Callable[[], psycopg.Connection],
        *,
        key: int = RELAY_LOCK_KEY,
    ) -> None:
        self._connect = connect
        self._key = key
        self._connection: psycopg.Connection | None = None
        self._held = False

    @property
    def key(self) -> int:
        return self._key

    def session(self) -> psycopg.Connection:
        """The lock's connection (a standby's too, once it tried): standbys look around on it."""
        if self._connection is None or self._connection.closed:
            self._connection = self._connect()
        return self._connection

    def try_acquire(self) -> bool:
        """Take the lock if no other session holds it (never waits)."""
        row = self.session().execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
        self._held = bool(row and row[0])
        return self._held

    def verify(self) -> None:
        """Raise LeadershipLost if the lock's session is gone (one round trip: the relay asks
        before every window it publishes, so it never publishes long after losing the lock)."""
        if self._connection is None or not self._held:
            raise LeadershipLost("this relay does not hold the leader lock")
        try:
            touch(self._connection)
        except psycopg.Error as error:
            self._held = False
            raise LeadershipLost(f"the leader lock's database session ended ({_first_line(error)})") from None

    def release(self) -> None:
        """Unlock and close; closing alone would free the lock too, this is just prompter."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if self._held and not connection.closed:
                connection.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
        except psycopg.Error as error:
            log.debug("could not unlock the leader lock (%s); closing its session frees it", error)
        finally:
            self._held = False
            connection.close()


def touch(connection: psycopg.Connection) -> None:
    """One round trip on the session that fails if it ended, and moves its `state_change`
    (what stall detection reads), without a transaction: an empty query runs none, where
    `SELECT 1` was a commit of its own before every window (docs/relay.md)."""
    connection.execute("")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
