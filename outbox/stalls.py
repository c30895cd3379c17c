"""Leaders that stopped making progress, as PostgreSQL sees them, and fencing one off.

A frozen leader (SIGSTOP, a frozen VM, a long pause) keeps its TCP connection, hence its
session and its advisory lock: nothing in PostgreSQL ends it. What does show is that its lock
session stops running statements: a working leader runs one on it (`LeaderLock.verify`)
before every batch it publishes, every poll interval while idle, and at every report while
Kafka keeps it waiting. So the time since the lock session's last statement is a heartbeat
per shard that costs nothing extra, cannot be written by anyone else, and belongs to the very
session whose end frees the lock. `manage.py status` reports a leader idle too long while its
shard has rows waiting; a standby ends such a leader's lock session with
`pg_terminate_backend` and takes the lock (docs/relay.md, "A frozen leader").
"""

from dataclasses import dataclass
from typing import Any

from .leader import RELAY_LOCK_KEY
from .shards import MAX_SHARDS, Shard, layout_key

# Each relay leader lock with its session: the key is RELAY_LOCK_KEY (one shard) or
# N << 56 | shard << 48 | RELAY_LOCK_KEY, so classid holds N and the shard above 0x6F75. Layout
# and gate keys carry tags above MAX_SHARDS in that byte and are left out.
LEADER_SESSIONS = """
SELECT a.pid, a.application_name, coalesce(host(a.client_addr), 'local socket'), a.state_change,
       (l.classid::bigint >> 24)::int, ((l.classid::bigint >> 16) & 255)::int,
       CASE WHEN a.state = 'active' THEN 0.0
            ELSE extract(epoch FROM clock_timestamp() - a.state_change)::float8 END
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.objid::bigint = %(objid)s AND (l.classid::bigint & 65535) = %(low)s
  AND (l.classid::bigint >> 24) <= %(max_shards)s
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY 5, 6
"""
# What waits in one shard: rows, and the age of the oldest (by id, as `status` measures it).
SHARD_BACKLOG = """
SELECT (SELECT count(*) FROM outbox_pending WHERE key_hash %% %(count)s = %(number)s),
       (SELECT extract(epoch FROM clock_timestamp() - o.occurred_at)::float8
          FROM outbox_pending p JOIN outbox o ON o.id = p.id
         WHERE p.key_hash %% %(count)s = %(number)s ORDER BY p.id LIMIT 1)
"""
# Ends the session only if it has run nothing since it was judged stalled, and waits (up to
# 5 s) until it is gone, so its lock is free when this returns.
TERMINATE_IF_STILL_IDLE = """
SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity
WHERE pid = %(pid)s AND state_change = %(state_change)s AND state <> 'active'
"""
# With shards, a frozen process also still counts as a relay of its layout, so the others'
# share of the shards stays too small to take its shards over: its registration goes as well.
# (A live relay's registration session runs a statement before every batch and every standby
# retry.) A layout key's classid is 0x7F << 24 | N << 16 | 0x6F75.
TERMINATE_STALLED_LAYOUT_MEMBERS = """
SELECT count(pg_terminate_backend(a.pid)) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.objid::bigint = %(objid)s AND l.classid::bigint = %(classid)s
  AND a.state <> 'active' AND clock_timestamp() - a.state_change > make_interval(secs => %(after)s)
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


@dataclass(frozen=True)
class LeaderSession:
    """The session holding one shard's leader lock."""

    backend_pid: int
    application_name: str  # "outbox-relay pid=<relay pid>"
    client: str  # the relay's address as PostgreSQL sees it
    state_change: Any  # a datetime; compared as is when terminating
    shard: Shard
    idle: float  # seconds since its last statement ended

    @property
    def relay_pid(self) -> int | None:
        name = self.application_name
        try:
            return int(name.rsplit("pid=", 1)[1]) if "pid=" in name else None
        except ValueError:
            return None


@dataclass(frozen=True)
class StalledLeader:
    session: LeaderSession
    rows_waiting: int
    oldest_age: float | None

    def describe(self) -> str:
        age = "?" if self.oldest_age is None else f"{self.oldest_age:.0f} s"
        session = self.session
        return (
            f"{session.application_name} (from {session.client}, backend {session.backend_pid})"
            f" has run no statement for {session.idle:.0f} s while {self.rows_waiting} rows wait"
            f" in its shard, the oldest {age} old"
        )


def leader_sessions(cursor: Any) -> list[LeaderSession]:
    """Every relay leader lock's session; `cursor` is a psycopg or Django cursor."""
    cursor.execute(
        LEADER_SESSIONS,
        {
            "objid": RELAY_LOCK_KEY & 0xFFFFFFFF,
            "low": (RELAY_LOCK_KEY >> 32) & 0xFFFF,
            "max_shards": MAX_SHARDS,
        },
    )
    return [
        LeaderSession(
            backend_pid=int(pid),
            application_name=str(name or ""),
            client=str(client),
            state_change=state_change,
            # A count of 0 is the key of a relay without shards: the whole outbox.
            shard=Shard(number, count) if count else Shard(),
            idle=float(idle or 0.0),
        )
        for pid, name, client, state_change, count, number, idle in cursor.fetchall()
    ]


def stalled_leaders(cursor: Any, *, after: float, lock_key: int | None = None) -> list[StalledLeader]:
    """Leaders (of the lock `lock_key` only, if given) idle longer than `after` seconds while
    rows of their shard wait. An idle leader with nothing to publish is not stalled."""
    found = []
    for session in leader_sessions(cursor):
        if session.idle <= after or lock_key not in (None, session.shard.lock_key):
            continue
        cursor.execute(SHARD_BACKLOG, {"count": session.shard.count, "number": session.shard.number})
        row = cursor.fetchone()
        waiting, oldest = (int(row[0]), row[1]) if row else (0, None)
        if waiting:
            found.append(StalledLeader(session, waiting, None if oldest is None else float(oldest)))
    return found


def terminate(cursor: Any, stalled: StalledLeader) -> bool:
    """End the stalled leader's lock session (which frees its lock); False if it ran a
    statement since it was judged stalled, or is gone already."""
    session = stalled.session
    cursor.execute(
        TERMINATE_IF_STILL_IDLE, {"pid": session.backend_pid, "state_change": session.state_change}
    )
    row = cursor.fetchone()
    return bool(row and row[0])


def terminate_stalled_layout_members(cursor: Any, *, count: int, after: float) -> int:
    """End the registrations of layout `count` idle longer than `after` seconds (frozen
    relays); how many ended."""
    cursor.execute(
        TERMINATE_STALLED_LAYOUT_MEMBERS,
        {"objid": RELAY_LOCK_KEY & 0xFFFFFFFF, "classid": layout_key(count) >> 32, "after": after},
    )
    row = cursor.fetchone()
    return int(row[0]) if row else 0
