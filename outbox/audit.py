"""The exactly-once audit: did every published event reach Kafka and take effect once per group?

Over the event log records of a time window or of one correlation id, it checks:

- each record is on Kafka at its recorded topic/partition/offset, with the same `ce_id`;
- every consumer group whose context subscribes to the event's type has an inbox row for it,
  or holds it as a dead letter or a parked record; where none has, the group either skipped it
  (its committed offset is past it) or has not got there yet (it lags);
- no handler took effect twice: no two events of one type and key have the same cause;
- no outbox row of the scope waits unpublished for longer than a grace period.

Each finding is a `Discrepancy` saying what is wrong and what to do about it.
`manage.py audit` prints them and exits non-zero if there is any.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from django.db.models import Q, QuerySet
from django.utils import timezone

from backbone.kafka import group_id, physical_topic
from backbone.models import DeadLetter, InboxEntry, ParkedRecord
from backbone.subscriptions import subscriptions

from .models import OutboxRecord, PublishedEvent


@dataclass(frozen=True)
class Scope:
    """The events audited: one correlation id, or those published in [since, until)."""

    correlation_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def describe(self) -> str:
        if self.correlation_id:
            return f"correlation id {self.correlation_id}"
        since = self.since.isoformat() if self.since else "the beginning"
        until = self.until.isoformat() if self.until else "now"
        return f"events published from {since} to {until}"


@dataclass(frozen=True)
class Discrepancy:
    kind: str  # not-on-kafka, other-record-on-kafka, unpublished, skipped, not-yet-handled, duplicate-effect
    what: str
    fix: str


@dataclass(frozen=True)
class AuditReport:
    scope: Scope
    events: int
    checks: int  # group handlings checked
    discrepancies: list[Discrepancy]
    unverifiable: int  # records Kafka's own retention already deleted

    @property
    def ok(self) -> bool:
        return not self.discrepancies


class KafkaView(Protocol):
    """What the audit asks Kafka (`outbox.audit_kafka.KafkaReader` is the real one)."""

    def ids_at(self, topic: str, partition: int, offsets: Sequence[int]) -> "RecordIds": ...

    def committed(self, group: str, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]: ...


@dataclass(frozen=True)
class RecordIds:
    """The ce_ids of the records at some offsets of one partition."""

    low: int  # the partition's first kept offset
    high: int  # the offset its next record will get
    ids: dict[int, str | None]  # offset -> ce_id (None: a record without one)


def audit(
    scope: Scope,
    kafka: KafkaView,
    *,
    contexts: Sequence[str] | None = None,
    unpublished_grace: timedelta = timedelta(minutes=1),
) -> AuditReport:
    """Check the scope's events against Kafka and the inboxes of `contexts` (default: every
    context with handlers)."""
    events = list(_records(scope).order_by("id"))
    findings: list[Discrepancy] = []
    unverifiable = _check_on_kafka(events, kafka, findings)
    checks = _check_handled(events, kafka, contexts or subscriptions.contexts(), findings)
    findings.extend(_duplicate_effects(events))
    findings.extend(_unpublished(scope, unpublished_grace))
    return AuditReport(scope, len(events), checks, findings, unverifiable)


def _records(scope: Scope) -> QuerySet[PublishedEvent]:
    if scope.correlation_id:
        return PublishedEvent.objects.filter(correlation_id=scope.correlation_id)
    records = PublishedEvent.objects.all()
    if scope.since:
        records = records.filter(published_at__gte=scope.since)
    if scope.until:
        records = records.filter(published_at__lt=scope.until)
    return records


def _republish(event: PublishedEvent) -> str:
    return (
        f"publish it again: UPDATE outbox SET published_at = NULL WHERE event_id = '{event.event_id}' "
        "(the relay republishes it; consumers drop copies by ce_id). If retention deleted the outbox "
        "row, the event must be emitted again by its context."
    )


# --- on Kafka, where the log says --------------------------------------------------------------


def _check_on_kafka(events: list[PublishedEvent], kafka: KafkaView, findings: list[Discrepancy]) -> int:
    by_partition: dict[tuple[str, int], list[PublishedEvent]] = defaultdict(list)
    for event in events:
        by_partition[(event.topic, event.kafka_partition)].append(event)
    unverifiable = 0
    for (topic, partition), placed in sorted(by_partition.items()):
        found = kafka.ids_at(physical_topic(topic), partition, sorted(e.kafka_offset for e in placed))
        for event in placed:
            where = f"{topic}/{partition}@{event.kafka_offset}"
            if event.kafka_offset < found.low:
                unverifiable += 1  # Kafka's retention deleted it: nothing left to compare
            elif event.kafka_offset >= found.high:
                findings.append(
                    Discrepancy(
                        "not-on-kafka",
                        f"{event.event_type} {event.event_id} is recorded as published at {where}, "
                        f"but that partition ends at offset {found.high - 1}: it never reached Kafka",
                        _republish(event),
                    )
                )
            elif found.ids.get(event.kafka_offset) != str(event.event_id):
                other = found.ids.get(event.kafka_offset)
                findings.append(
                    Discrepancy(
                        "other-record-on-kafka",
                        f"{event.event_type} {event.event_id} is recorded at {where}, but the record "
                        f"there is {'ce_id ' + other if other else 'another record (no ce_id, or deleted)'}: "
                        "the record was never published where the log says (or the topic was recreated)",
                        _republish(event),
                    )
                )
    return unverifiable


# --- handled once by every subscribed group ------------------------------------------------------


@dataclass(frozen=True)
class _Missing:
    context: str
    event: PublishedEvent


def _check_handled(
    events: list[PublishedEvent], kafka: KafkaView, contexts: Sequence[str], findings: list[Discrepancy]
) -> int:
    subscribers: dict[str, list[str]] = defaultdict(list)
    for context in contexts:
        for type_name in subscriptions.for_context(context):
            subscribers[type_name].append(context)
    taken = _handlings({str(event.event_id) for event in events})
    missing: list[_Missing] = []
    checks = 0
    for event in events:
        for context in subscribers.get(event.event_type, []):
            checks += 1
            if (str(event.event_id), group_id(context)) not in taken:
                missing.append(_Missing(context, event))
    findings.extend(_explain_missing(missing, kafka))
    return checks


def _handlings(event_ids: set[str]) -> set[tuple[str, str]]:
    """(ce_id, group) pairs that an inbox row, dead letter or parked record accounts for."""
    ids = list(event_ids)
    handled = {
        (str(event_id), group)
        for event_id, group in InboxEntry.objects.filter(event_id__in=ids).values_list(
            "event_id", "consumer_group"
        )
    }
    # A dead letter's record_id is the record's ce_id (a digest only for invalid records).
    handled |= set(
        DeadLetter.objects.filter(Q(event_id__in=ids) | Q(record_id__in=ids)).values_list(
            "record_id", "consumer_group"
        )
    )
    handled |= set(ParkedRecord.objects.filter(record_id__in=ids).values_list("record_id", "consumer_group"))
    return handled


def _explain_missing(missing: list[_Missing], kafka: KafkaView) -> list[Discrepancy]:
    """A group that committed past events it has no trace of skipped them: one finding per
    run of consecutive such offsets; one that has not got there yet lags."""
    by_group: dict[tuple[str, str, int], list[PublishedEvent]] = defaultdict(list)
    for item in missing:
        by_group[(item.context, item.event.topic, item.event.kafka_partition)].append(item.event)
    findings: list[Discrepancy] = []
    for (context, topic, partition), events in sorted(by_group.items()):
        group = group_id(context)
        committed = kafka.committed(group, [(physical_topic(topic), partition)]).get(
            (physical_topic(topic), partition), -1
        )
        events.sort(key=lambda e: e.kafka_offset)
        skipped = [e for e in events if e.kafka_offset < committed]
        behind = [e for e in events if e.kafka_offset >= committed]
        if skipped:
            findings.append(_skipped(context, group, topic, partition, committed, skipped))
        if behind:
            findings.append(
                Discrepancy(
                    "not-yet-handled",
                    f"group {group} has not handled {len(behind)} event(s) on {topic}/{partition} from "
                    f"offset {behind[0].kafka_offset} (first: {behind[0].event_type} {behind[0].event_id}); "
                    f"its committed offset is {committed if committed >= 0 else 'none'}",
                    f"make sure `manage.py consume {context}` runs and catches up (manage.py audit --wait "
                    "waits for it), then audit again",
                )
            )
    return findings


def _skipped(
    context: str, group: str, topic: str, partition: int, committed: int, events: list[PublishedEvent]
) -> Discrepancy:
    first, last = events[0], events[-1]
    span = (
        f"offset {first.kafka_offset}"
        if first is last
        else f"offsets {first.kafka_offset}-{last.kafka_offset}"
    )
    ids = ", ".join(f"{e.event_type} {e.event_id}" for e in events[:3]) + (" ..." if len(events) > 3 else "")
    return Discrepancy(
        "skipped",
        f"group {group} committed offset {committed} on {topic}/{partition} but has no inbox row, dead "
        f"letter or parked record for {len(events)} event(s) it subscribes to at {span} ({ids}): "
        "it skipped them, or their inbox rows were lost",
        f"stop `manage.py consume {context}`, rewind the group: kafka-consumer-groups.sh --group {group} "
        f"--topic {physical_topic(topic)}:{partition} --reset-offsets --to-offset {first.kafka_offset} "
        "--execute, and start it again (events it did handle are dropped by the inbox; if an inbox row "
        "was lost, check the handler's effect first, it would run again)",
    )


# --- effects that happened twice ----------------------------------------------------------------


def _duplicate_effects(events: list[PublishedEvent]) -> list[Discrepancy]:
    """A handler emits an event of one type for one aggregate once per cause; two mean it ran
    twice for one event (its inbox row was lost, or it runs outside the inbox)."""
    by_cause: dict[tuple[str, str, str], list[PublishedEvent]] = defaultdict(list)
    for event in events:
        if event.causation_id:
            by_cause[(event.causation_id, event.event_type, event.key)].append(event)
    return [
        Discrepancy(
            "duplicate-effect",
            f"{len(twins)} events {event_type} for {key} were caused by the one event {cause} "
            f"({', '.join(str(e.event_id) for e in twins)}): its handler took effect more than once",
            f"compensate the extra effect by hand in the context that emits {event_type}, and find why "
            "the handler ran twice (a lost inbox row, or a handler that commits outside its inbox "
            "transaction)",
        )
        for (cause, event_type, key), twins in sorted(by_cause.items())
        if len(twins) > 1
    ]


# --- waiting in the outbox -----------------------------------------------------------------------


def _unpublished(scope: Scope, grace: timedelta) -> list[Discrepancy]:
    rows = OutboxRecord.objects.filter(published_at__isnull=True, occurred_at__lt=timezone.now() - grace)
    if scope.correlation_id:
        rows = rows.filter(correlation_id=scope.correlation_id)
    else:
        rows = rows.filter(occurred_at__gte=scope.since) if scope.since else rows
        rows = rows.filter(occurred_at__lt=scope.until) if scope.until else rows
    count = rows.count()
    if not count:
        return []
    oldest = rows.order_by("occurred_at").first()
    assert oldest is not None
    return [
        Discrepancy(
            "unpublished",
            f"{count} outbox row(s) were never published, the oldest {oldest.event_type} {oldest.event_id} "
            f"written at {oldest.occurred_at.isoformat()}",
            "check that `manage.py relay` runs and leads, and that Kafka is reachable (its log says why "
            "it waits); rows are published as soon as it can",
        )
    ]
