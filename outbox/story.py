"""The story of one correlation (an order): every event in it, and who handled each.

Events come from the event log (`PublishedEvent`: ids, type, where Kafka stored them; kept for
EVENT_LOG_RETENTION_DAYS) and the outbox (unpublished events, and the payloads, for
OUTBOX_RETENTION_HOURS), the handling from the consumer groups' inbox rows. So an order older
than the outbox's retention still shows its chain, without payloads.

A correlation id alone is not proof that an event belongs to an aggregate's story (it travels
in headers, and older orders took it from the client), so `story(..., subject=order_id)` keeps
only the events keyed by that aggregate and the events they caused, directly or not.
"""

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from backbone.kafka import logical_topic
from backbone.models import InboxEntry

from .models import OutboxRecord, PublishedEvent


@dataclass(frozen=True)
class Handling:
    """One consumer group (context) handled the event at that time."""

    context: str
    consumer_group: str
    handled_at: datetime


@dataclass(frozen=True)
class StoryEntry:
    event_id: str
    event_type: str
    correlation_id: str
    causation_id: str | None
    topic: str
    key: str
    partition: int | None  # None until the relay has published it
    offset: int | None
    occurred_at: datetime
    published_at: datetime | None
    payload: dict[str, Any]
    handled_by: tuple[Handling, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def story(correlation_id: str, *, subject: str | None = None) -> list[StoryEntry]:
    """The events of one story in the order they were written, with their handlers.

    With a `subject` (an aggregate id, the record key of its events), only the events of that
    aggregate and those caused by them: other aggregates' events sharing the correlation id are
    left out.
    """
    events = _events_of(correlation_id)
    if subject is not None:
        events = _belonging_to(events, subject)
    handled: dict[str, list[Handling]] = {}
    entries = InboxEntry.objects.filter(event_id__in=[event.event_id for event in events]).order_by(
        "handled_at"
    )
    for entry in entries:
        handled.setdefault(str(entry.event_id), []).append(
            Handling(
                context=logical_topic(entry.consumer_group),  # the group name is the namespaced context
                consumer_group=entry.consumer_group,
                handled_at=entry.handled_at,
            )
        )
    return [
        StoryEntry(
            event_id=str(event.event_id),
            event_type=event.event_type,
            correlation_id=event.correlation_id,
            causation_id=event.causation_id or None,
            topic=event.topic,
            key=event.key,
            partition=event.kafka_partition,
            offset=event.kafka_offset,
            occurred_at=event.occurred_at,
            published_at=event.published_at,
            payload=event.payload if isinstance(event, OutboxRecord) else {},
            handled_by=tuple(handled.get(str(event.event_id), ())),
        )
        for event in events
    ]


def _events_of(correlation_id: str) -> list["OutboxRecord | PublishedEvent"]:
    """The outbox rows of the story, and the records of its events whose rows retention deleted,
    in id (write) order: a record's id is its outbox row's."""
    rows = {row.id: row for row in OutboxRecord.objects.filter(correlation_id=correlation_id)}
    by_id: dict[int, OutboxRecord | PublishedEvent] = {
        record.id: record
        for record in PublishedEvent.objects.filter(correlation_id=correlation_id).exclude(id__in=list(rows))
    }
    by_id.update(rows)
    return [by_id[row_id] for row_id in sorted(by_id)]


def _belonging_to(
    events: list["OutboxRecord | PublishedEvent"], subject: str
) -> list["OutboxRecord | PublishedEvent"]:
    """The subject's own events and their effects. An effect is emitted by a handler of its
    cause, after the cause was committed and published, so it comes later in `id` order and one
    pass finds the whole causation chain."""
    kept: list[OutboxRecord | PublishedEvent] = []
    kept_ids: set[str] = set()
    for event in events:
        if event.key == subject or (event.causation_id and event.causation_id in kept_ids):
            kept.append(event)
            kept_ids.add(str(event.event_id))
    return kept
