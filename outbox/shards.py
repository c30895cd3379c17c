"""Relay shards: several relays share the outbox by the hash of each row's key.

A relay started with N shards publishes shard k's rows (those whose `key_hash % N == k`, see
migration 0008) only while it holds shard k's advisory lock, one lock per shard, so each shard
has one active leader and takes over as a single relay does. A key always hashes to one shard,
and a shard publishes in commit order, so an aggregate's events keep their order.

Two layouts must never publish at once: the same key is in shard 0 of 2 and shard 1 of 3. So
every relay process first registers its layout (a shared advisory lock on a key that names N),
and registers only while no other layout is registered; the check and the registration are one
step under a transaction lock. Changing N therefore means: stop every relay, change, start.
"""

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from .leader import RELAY_LOCK_KEY, LeaderLock, LeadershipLost, touch

log = logging.getLogger("outbox.relay")

MAX_SHARDS = 64  # N and the shard number each fit in a byte of the lock key
# Bits above RELAY_LOCK_KEY's 48: a shard's lock names (N, shard); a layout's names 0x7F and N.
_LAYOUT_TAG = 0x7F << 56
_GATE_KEY = (0x7E << 56) | RELAY_LOCK_KEY  # serializes "check the layouts, then register"

# Session advisory locks of this database, their bigint keys rebuilt from classid and objid.
_ADVISORY_LOCKS = """
    SELECT (classid::bigint << 32) | objid::bigint, count(*) FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND objsubid = 1
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
    GROUP BY 1
"""


def layout_key(count: int) -> int:
    return _LAYOUT_TAG | (count << 48) | RELAY_LOCK_KEY


def layout_of(key: int) -> int | None:
    """The shard count a layout lock names (None if the key is not a layout's)."""
    if key & ~((0xFF << 48) | 0xFFFFFFFFFFFF) != _LAYOUT_TAG or key & 0xFFFFFFFFFFFF != RELAY_LOCK_KEY:
        return None
    return (key >> 48) & 0xFF


@dataclass(frozen=True)
class Shard:
    """Shard `number` of `count`; a count of 1 is the whole outbox, as one relay had it."""

    number: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS or not 0 <= self.number < self.count:
            raise ValueError(f"no shard {self.number} of {self.count} (1 to {MAX_SHARDS} shards)")

    @property
    def lock_key(self) -> int:
        # One shard keeps the lock key of a single relay. Otherwise the key names N as well
        # as the shard, so shard 0 of 2 and shard 0 of 4 never pass for the same lock.
        if self.count == 1:
            return RELAY_LOCK_KEY
        return (self.count << 56) | (self.number << 48) | RELAY_LOCK_KEY

    @property
    def cleans_up(self) -> bool:
        """Retention runs once per database, not once per shard: shard 0's leader runs it."""
        return self.number == 0

    @property
    def label(self) -> str:
        return "" if self.count == 1 else f" (shard {self.number} of {self.count})"


class OtherLayout(RuntimeError):
    """Another relay runs with a different number of shards."""


class RelayLayout:
    """This process's registration under its shard count, and its share of the shards.

    Holds a shared advisory lock on the layout's key on a connection of its own for as long
    as the process relays. Its holders are the live relays of this layout, so each process
    leads at most ceil(N / processes) shards and leaves the rest to the others; when one dies,
    the survivors' share grows and they take its shards over.
    """

    def __init__(self, connect: Callable[[], psycopg.Connection], count: int) -> None:
        self.count = count
        self._connect = connect
        self._key = layout_key(count)
        self._connection: psycopg.Connection | None = None
        self._led = 0
        self._mutex = threading.Lock()

    def join(self) -> None:
        """Register this layout, or raise OtherLayout while another one is registered."""
        connection = self._connect()
        try:
            with connection.transaction():
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (_GATE_KEY,))
                others = sorted(_layouts(connection) - {self.count})
                if others:
                    raise OtherLayout(f"another relay runs with {others[0]} shards, this one {self.count}")
                connection.execute("SELECT pg_advisory_lock_shared(%s)", (self._key,))
        except BaseException:
            connection.close()
            raise
        self._connection = connection

    def verify(self) -> None:
        """Raise LeadershipLost if the registration's session is gone (another layout could
        have registered since)."""
        try:
            if self._connection is None:
                raise LeadershipLost("this relay's shard layout is not registered")
            touch(self._connection)
        except psycopg.Error as error:
            raise LeadershipLost(f"the shard layout's database session ended ({error})") from None

    def may_lead_another(self) -> bool:
        """True while this process leads fewer shards than its share. Registers again first
        if the registration's session ended (a PostgreSQL restart), unless another layout
        registered meanwhile: then this process leads nothing and stands by."""
        with self._mutex:
            try:
                holders = self._holders()
            except (psycopg.Error, LeadershipLost):
                self.leave()
                try:
                    self.join()
                except OtherLayout as error:
                    log.warning("%s: standing by until it stops", error)
                    return False
                holders = self._holders()
            return self._led < math.ceil(self.count / max(1, holders))

    def _holders(self) -> int:
        """How many relay processes hold this layout now (this one included)."""
        if self._connection is None:
            raise LeadershipLost("this relay's shard layout is not registered")
        return sum(int(n) for key, n in self._connection.execute(_ADVISORY_LOCKS) if key == self._key)

    def hand_over_one(self) -> bool:
        """True if this process leads more than its share and one shard is to be handed over
        (counted off at once, so of two threads asking together only the excess lets go)."""
        with self._mutex:
            share = math.ceil(self.count / max(1, self._holders()))
            if self._led <= share:
                return False
            self._led -= 1
            return True

    def count_led(self, change: int) -> None:
        with self._mutex:
            self._led += change

    def leave(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()  # ends the session: the shared lock goes with it


def _layouts(connection: psycopg.Connection) -> set[int]:
    """The shard counts of the layouts registered now."""
    return {count for key, _ in connection.execute(_ADVISORY_LOCKS) if (count := layout_of(key))}


class ShardLock(LeaderLock):
    """A shard's leader lock: taken only within this process's share, and valid only while
    the layout is still registered."""

    def __init__(self, connect: Callable[[], psycopg.Connection], shard: Shard, layout: RelayLayout) -> None:
        super().__init__(connect, key=shard.lock_key)
        self._layout = layout
        self._shard = shard
        self._counted = False

    def try_acquire(self) -> bool:
        if not self._counted and not self._layout.may_lead_another():
            return False
        held = super().try_acquire()
        if held and not self._counted:
            self._layout.count_led(+1)
            self._counted = True
        return held

    def verify(self) -> None:
        """Before each window: the layout is still registered, the lock still held, and this
        process within its share. A process that started alone won every shard; once another
        relay of the layout joins, it hands the excess over (the term ends as if the lock were
        lost: its marks are written, its unconfirmed records purged, and it stands by)."""
        self._layout.verify()
        super().verify()
        # (One shard is always this process's share: no need to ask PostgreSQL each window.)
        if self._shard.count > 1 and self._counted and self._layout.hand_over_one():
            self._counted = False
            raise LeadershipLost(f"another relay joined: handing{self._shard.label} over")

    def release(self) -> None:
        try:
            super().release()
        finally:
            if self._counted:
                self._layout.count_led(-1)
                self._counted = False
