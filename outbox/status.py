"""The whole backbone at a glance: the relay and every consumer group, and what is wrong.

`collect()` gathers the facts once (backbone.status for the consumer groups, the outbox tables
and the leader lock for the relay); `manage.py status` prints them, `--json` dumps them, and
the admin's "Backbone overview" renders the same objects. `problems()` turns them into one line
per threshold passed (settings STATUS_*), which `status --check` prints and exits non-zero on.
"""

import dataclasses
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.utils import timezone

from backbone import status as backbone_status
from backbone.conf import backbone_settings
from backbone.status import GroupStatus, KafkaView, Member
from backbone.subscriptions import subscriptions

from .leader import RELAY_LOCK_KEY
from .stalls import StalledLeader, stalled_leaders

RELAY = "relay"

# The advisory lock's holder: its bigint key is split into classid (high) and objid (low).
LEADER_LOCK_HOLDER = """
SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""
BACKLOG = """
SELECT (SELECT count(*) FROM outbox_pending),
       (SELECT o.occurred_at FROM outbox_pending p JOIN outbox o ON o.id = p.id ORDER BY p.id LIMIT 1)
"""


@dataclass(frozen=True)
class RelayStatus:
    leader: Member | None  # the live heartbeat of the relay that holds the lock
    standbys: list[Member]
    dead: list[Member]
    lock_holder: str | None  # application_name of the lock's session: "outbox-relay pid=N"
    rows_waiting: int | None  # None while PostgreSQL does not answer
    oldest_age: float | None  # seconds since the oldest unpublished row occurred
    # Leaders whose lock session ran nothing for STATUS_MAX_LEADER_IDLE_SECONDS while rows wait.
    stalled: list[StalledLeader] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.leader.rate if self.leader else 0.0


@dataclass(frozen=True)
class Overview:
    checked_at: datetime
    seconds: float  # how long collecting took
    kafka_error: str | None
    database_error: str | None
    relay: RelayStatus
    groups: list[GroupStatus]
    problems: list[str] = field(default_factory=list)


def collect(only: str | None = None) -> Overview:
    """Everything `status` shows; `only` ("relay" or a context) limits the problems to it."""
    started = time.monotonic()
    now = timezone.now()
    contexts = [c for c in subscriptions.contexts() if only in (None, c)]
    database_error = None
    members: list[Member] = []
    counts = None
    backlog: tuple[int | None, float | None] = (None, None)
    holder = None
    stalled: list[StalledLeader] = []
    try:
        members = backbone_status.heartbeats(now)
        counts = backbone_status.dead_letter_counts()
        backlog, holder, stalled = _backlog(now), _lock_holder(), _stalled()
    except (OperationalError, InterfaceError) as error:
        database_error = f"PostgreSQL unreachable ({_first_line(error)})"
    except DatabaseError as error:
        database_error = f"PostgreSQL query failed ({_first_line(error)}; run `manage.py migrate`?)"
    kafka = backbone_status.kafka_view(contexts) if contexts else KafkaView()
    overview = Overview(
        checked_at=now,
        seconds=0.0,
        kafka_error=kafka.error,
        database_error=database_error,
        relay=dataclasses.replace(_relay(members, holder, backlog), stalled=stalled),
        groups=backbone_status.group_statuses(contexts, members, kafka, counts),
    )
    return dataclasses.replace(
        overview, seconds=round(time.monotonic() - started, 3), problems=problems(overview, only=only)
    )


def problems(overview: Overview, *, only: str | None = None) -> list[str]:
    """One line per threshold passed, naming the process or group."""
    found = [error for error in (overview.database_error, overview.kafka_error) if error]
    if only in (None, RELAY):
        found += _relay_problems(overview.relay)
    for group in overview.groups:
        found += _group_problems(group)
    return found


def _relay_problems(relay: RelayStatus) -> list[str]:
    found = []
    if relay.leader is None:
        dead = ", ".join(f"{m.host} pid {m.pid}" for m in relay.dead)
        found.append("relay: no live leader" + (f" (stale heartbeat: {dead})" if dead else ""))
    found += [_stalled_problem(stalled, relay) for stalled in relay.stalled]
    max_age = backbone_settings.STATUS_MAX_BACKLOG_AGE_SECONDS
    if relay.oldest_age is not None and relay.oldest_age > max_age:
        found.append(
            f"relay: oldest unpublished row is {relay.oldest_age:.0f} s old (limit {max_age:g} s), "
            f"{relay.rows_waiting} rows waiting"
        )
    return found


def _stalled_problem(stalled: StalledLeader, relay: RelayStatus) -> str:
    """Names the process (host from its heartbeat, else its address), the shard and the wait."""
    session, pid = stalled.session, stalled.session.relay_pid
    hosts = {
        m.host
        for m in [*relay.standbys, *relay.dead] + ([relay.leader] if relay.leader else [])
        if m.pid == pid
    }
    host = ", ".join(sorted(hosts)) or session.client
    age = "?" if stalled.oldest_age is None else f"{stalled.oldest_age:.0f} s"
    return (
        f"relay: leader of shard {session.shard.number} of {session.shard.count} stalled: "
        f"host {host} pid {pid}, "
        f"its lock session (backend {session.backend_pid}) idle {session.idle:.0f} s "
        f"(limit {backbone_settings.STATUS_MAX_LEADER_IDLE_SECONDS:g} s) "
        f"while {stalled.rows_waiting} rows wait, "
        f"the oldest {age} old"
    )


def _group_problems(group: GroupStatus) -> list[str]:
    found = []
    name = f"consumer {group.context}"
    if not group.members:
        dead = ", ".join(f"{m.host} pid {m.pid}" for m in group.dead_members)
        found.append(f"{name}: no live member" + (f" (stale heartbeat: {dead})" if dead else ""))
    if group.lag is not None and group.lag > backbone_settings.STATUS_MAX_LAG:
        found.append(f"{name}: lag {group.lag} records (limit {backbone_settings.STATUS_MAX_LAG})")
    limit = backbone_settings.STATUS_MAX_PENDING_DEAD_LETTERS
    if group.dead_letters_pending is not None and group.dead_letters_pending > limit:
        found.append(f"{name}: {group.dead_letters_pending} dead letters pending (limit {limit})")
    return found


def as_json(overview: Overview) -> dict[str, Any]:
    """Plain data for `status --json`, with the totals the dataclasses compute."""
    data = dataclasses.asdict(overview)
    data["relay"]["rate"] = overview.relay.rate
    for group, raw in zip(overview.groups, data["groups"], strict=True):
        raw.update(lag=group.lag, rate=group.rate, last_handled_at=group.last_handled_at)
    return data


def _relay(
    members: list[Member], holder: str | None, backlog: tuple[int | None, float | None]
) -> RelayStatus:
    relays = [m for m in members if m.role == RELAY]
    live = [m for m in relays if m.alive]
    holder_pid = _pid_of(holder)
    leaders = [m for m in live if m.state == "leader" and holder_pid in (None, m.pid)]
    leader = leaders[0] if leaders else None
    return RelayStatus(
        leader=leader,
        standbys=[m for m in live if m is not leader],
        dead=[m for m in relays if not m.alive],
        lock_holder=holder,
        rows_waiting=backlog[0],
        oldest_age=backlog[1],
    )


def _backlog(now: datetime) -> tuple[int | None, float | None]:
    with connection.cursor() as cursor:
        cursor.execute(BACKLOG)
        row = cursor.fetchone()
    waiting, oldest = (row[0], row[1]) if row else (0, None)
    age = max(0.0, (now - oldest).total_seconds()) if isinstance(oldest, datetime) else None
    return int(waiting), age


def _stalled() -> list[StalledLeader]:
    with connection.cursor() as cursor:
        return stalled_leaders(cursor, after=backbone_settings.STATUS_MAX_LEADER_IDLE_SECONDS)


def _lock_holder() -> str | None:
    with connection.cursor() as cursor:
        cursor.execute(LEADER_LOCK_HOLDER, [RELAY_LOCK_KEY >> 32, RELAY_LOCK_KEY & 0xFFFFFFFF])
        row = cursor.fetchone()
    return str(row[0]) if row else None


def _pid_of(application_name: str | None) -> int | None:
    if not application_name or "pid=" not in application_name:
        return None
    try:
        return int(application_name.rsplit("pid=", 1)[1])
    except ValueError:
        return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return str(timedelta(seconds=round(seconds)))
