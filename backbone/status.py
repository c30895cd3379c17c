"""What the consumer side of the backbone is doing, for `manage.py status` and the console.

Each consumer group (one per context) is described from three sources, each allowed to fail
on its own so the answer comes even while one of them is down:

- heartbeat rows (`ProcessHeartbeat`): which members live, on which host and pid, with which
  partitions, when they last handled a record and how fast;
- Kafka: the group's committed offsets and the partitions' high watermarks, hence the lag;
- PostgreSQL: dead letters pending and parked records.

Every Kafka request has a short timeout (KAFKA_TIMEOUT): the whole status takes well under
two seconds even when the broker does not answer at all.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from django.db.models import Count

from backbone.conf import backbone_settings

from .kafka import admin_config, group_id, logical_topic, physical_topic
from .models import DeadLetter, DeadLetterStatus, ParkedRecord, ProcessHeartbeat
from .subscriptions import subscriptions

KAFKA_TIMEOUT = 0.5  # seconds per Kafka request; the requests run concurrently


@dataclass(frozen=True)
class Member:
    """One process, as its heartbeat row describes it."""

    role: str
    name: str
    host: str
    pid: int
    state: str
    since: datetime | None
    beat_at: datetime
    alive: bool
    facts: dict[str, Any]

    @property
    def partitions(self) -> list[str]:
        return list(self.facts.get("partitions", []))

    @property
    def rate(self) -> float:
        return float(self.facts.get("rate", 0.0))


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # None: the group never committed on it
    high_watermark: int | None
    lag: int | None  # None while Kafka does not answer


@dataclass(frozen=True)
class GroupStatus:
    context: str
    group: str
    members: list[Member]  # live ones
    dead_members: list[Member]  # heartbeats gone stale: killed, hung or cut off
    partitions: list[PartitionLag]
    dead_letters_pending: int | None  # None while PostgreSQL does not answer
    parked: int | None
    kafka_members: int | None = None  # members Kafka's group coordinator knows

    @property
    def lag(self) -> int | None:
        if not self.partitions or any(p.lag is None for p in self.partitions):
            return None
        return sum(p.lag or 0 for p in self.partitions)

    @property
    def rate(self) -> float:
        return round(sum(member.rate for member in self.members), 2)

    @property
    def last_handled_at(self) -> str | None:
        times = [
            str(m.facts["last_handled_at"])
            for m in self.members + self.dead_members
            if m.facts.get("last_handled_at")
        ]
        return max(times, default=None)


@dataclass
class KafkaView:
    """The offsets Kafka knows, or why it could not say."""

    error: str | None = None
    committed: dict[str, dict[tuple[str, int], int]] = field(default_factory=dict)  # group -> tp -> offset
    high: dict[tuple[str, int], int] = field(default_factory=dict)
    partitions: dict[str, list[int]] = field(default_factory=dict)  # logical topic -> partitions
    members: dict[str, int] = field(default_factory=dict)  # group -> members

    @property
    def reachable(self) -> bool:
        return self.error is None


def heartbeats(now: datetime) -> list[Member]:
    """Every heartbeat row; one older than STATUS_HEARTBEAT_STALE_SECONDS is not alive."""
    stale = timedelta(seconds=backbone_settings.STATUS_HEARTBEAT_STALE_SECONDS)
    return [
        Member(
            role=row.role,
            name=row.name,
            host=row.host,
            pid=row.pid,
            state=row.state,
            since=row.since,
            beat_at=row.beat_at,
            alive=now - row.beat_at <= stale,
            facts=dict(row.facts or {}),
        )
        for row in ProcessHeartbeat.objects.order_by("role", "name", "host", "pid")
    ]


def dead_letter_counts() -> tuple[dict[str, int], dict[str, int]]:
    """Pending dead letters and parked records per consumer group."""
    pending = (
        DeadLetter.objects.filter(status=DeadLetterStatus.PENDING)
        .values("consumer_group")
        .annotate(n=Count("id"))
    )
    parked = ParkedRecord.objects.values("consumer_group").annotate(n=Count("id"))
    return (
        {row["consumer_group"]: row["n"] for row in pending},
        {row["consumer_group"]: row["n"] for row in parked},
    )


def kafka_view(contexts: Iterable[str]) -> KafkaView:
    """Committed offsets and high watermarks of the contexts' groups, in three requests."""
    view = KafkaView()
    # log_level 0: an unreachable broker is reported once below, not as a log line per retry.
    admin = AdminClient(admin_config(log_level=0, **{"socket.connection.setup.timeout.ms": 1000}))
    topics = {context: sorted(subscriptions.topics_for(context)) for context in contexts}
    try:
        metadata = admin.list_topics(timeout=KAFKA_TIMEOUT * 2)
    except KafkaException as error:
        view.error = (
            f"Kafka unreachable at {backbone_settings.KAFKA_BOOTSTRAP_SERVERS} ({error.args[0].str()})"
        )
        return view
    for topic in sorted({t for names in topics.values() for t in names}):
        found = metadata.topics.get(physical_topic(topic))
        view.partitions[topic] = sorted(found.partitions) if found is not None and not found.error else []
    every = [TopicPartition(physical_topic(t), p) for t, ps in view.partitions.items() for p in ps]
    try:
        latest = (
            admin.list_offsets({tp: OffsetSpec.latest() for tp in every}, request_timeout=KAFKA_TIMEOUT)
            if every
            else {}
        )
        offsets = {
            context: admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group_id(context), _partitions_of(names, view))],
                request_timeout=KAFKA_TIMEOUT,
            )[group_id(context)]
            for context, names in topics.items()
            if _partitions_of(names, view)
        }
        described = admin.describe_consumer_groups(
            [group_id(c) for c in topics], request_timeout=KAFKA_TIMEOUT
        )
        for tp, future in latest.items():
            view.high[(logical_topic(tp.topic), tp.partition)] = future.result().offset
        for context, future in offsets.items():
            view.committed[context] = {
                (logical_topic(tp.topic), tp.partition): tp.offset
                for tp in future.result().topic_partitions
                if tp.offset >= 0
            }
        for group, future in described.items():
            view.members[group] = len(future.result().members)
    except KafkaException as error:
        view.error = f"Kafka did not answer in time at {backbone_settings.KAFKA_BOOTSTRAP_SERVERS} ({error})"
    return view


def group_statuses(
    contexts: Iterable[str],
    members: list[Member],
    kafka: KafkaView,
    counts: tuple[dict[str, int], dict[str, int]] | None,
) -> list[GroupStatus]:
    """One GroupStatus per context; `counts` is None while PostgreSQL does not answer."""
    statuses = []
    for context in contexts:
        group = group_id(context)
        mine = [m for m in members if m.role == "consumer" and m.name == context]
        statuses.append(
            GroupStatus(
                context=context,
                group=group,
                members=[m for m in mine if m.alive],
                dead_members=[m for m in mine if not m.alive],
                partitions=_lags(context, kafka),
                dead_letters_pending=None if counts is None else counts[0].get(group, 0),
                parked=None if counts is None else counts[1].get(group, 0),
                kafka_members=kafka.members.get(group),
            )
        )
    return statuses


def _partitions_of(topics: list[str], view: KafkaView) -> list[TopicPartition]:
    return [TopicPartition(physical_topic(t), p) for t in topics for p in view.partitions.get(t, [])]


def _lags(context: str, kafka: KafkaView) -> list[PartitionLag]:
    committed = kafka.committed.get(context, {})
    lags = []
    for topic in sorted(subscriptions.topics_for(context)):
        for partition in kafka.partitions.get(topic, []):
            high = kafka.high.get((topic, partition))
            offset = committed.get((topic, partition))
            lag = None if high is None or not kafka.reachable else max(0, high - (offset or 0))
            lags.append(PartitionLag(topic, partition, offset, high, lag))
    return lags
