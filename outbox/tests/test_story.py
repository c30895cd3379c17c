"""story(): the chain of events of one correlation, with the consumer groups that handled each."""

import json

import pytest
from confluent_kafka import KafkaError, Message, Producer
from django.db import transaction
from django.utils import timezone

from backbone.correlation import correlation_scope
from backbone.envelope import Envelope, format_time
from backbone.kafka import group_id, physical_topic, producer_config
from backbone.tests.consumer_probe import ProbeContextFactory, ProbeRecorded, consume_until_caught_up
from outbox.emit import emit
from outbox.models import OutboxRecord
from outbox.story import story

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]
pytest_plugins = ["backbone.tests.consumer_fixtures"]


def _publish_like_the_relay(correlation_id: str) -> None:
    """Publish a story's unpublished outbox rows and stamp where Kafka stored them."""
    producer = Producer(producer_config())
    stored: dict[int, tuple[int, int]] = {}

    def delivered(row_id: int):
        def report(error: KafkaError | None, message: Message) -> None:
            assert error is None, error
            stored[row_id] = (message.partition(), message.offset())

        return report

    rows = OutboxRecord.objects.filter(correlation_id=correlation_id, published_at=None).order_by("id")
    for row in rows:
        envelope = Envelope(
            id=str(row.event_id),
            type=row.event_type,
            source=row.source,
            time=format_time(row.occurred_at),
            data_version=row.data_version,
            correlation_id=row.correlation_id,
            causation_id=row.causation_id or None,
        )
        producer.produce(
            physical_topic(row.topic),
            key=row.key.encode(),
            value=json.dumps(row.payload).encode(),
            headers=envelope.headers(),
            on_delivery=delivered(row.pk),
        )
    assert producer.flush(30) == 0
    for row_id, (partition, offset) in stored.items():
        OutboxRecord.objects.filter(pk=row_id).update(
            published_at=timezone.now(), kafka_partition=partition, kafka_offset=offset
        )


def test_story_lists_each_event_with_the_groups_that_handled_it(
    make_probe_context: ProbeContextFactory,
) -> None:
    first, second = make_probe_context(), make_probe_context()
    with correlation_scope("story-1"), transaction.atomic():
        emit(ProbeRecorded(probe_key="s-1", seq=1, follow_up=True))
    _publish_like_the_relay("story-1")

    consume_until_caught_up(first)
    consume_until_caught_up(second)
    entries = story("story-1")

    origin, *follow_ups = entries
    assert origin.event_type == "orders.ProbeRecorded"
    assert origin.causation_id is None
    assert origin.topic == "orders"
    assert origin.partition is not None
    assert origin.offset is not None
    assert origin.payload == {"probe_key": "s-1", "seq": 1, "amount": 0, "follow_up": True}
    assert sorted(h.context for h in origin.handled_by) == sorted([first, second])
    assert {h.consumer_group for h in origin.handled_by} == {group_id(first), group_id(second)}
    # Each group's handler emitted a follow-up, caused by the origin, in the same story.
    assert [entry.event_type for entry in follow_ups] == ["orders.ProbeFollowedUp"] * 2
    assert {entry.causation_id for entry in follow_ups} == {origin.event_id}
    assert all(entry.partition is None and entry.handled_by == () for entry in follow_ups)
    assert origin.as_dict()["handled_by"][0]["handled_at"] is not None


def test_an_unknown_story_is_empty() -> None:
    assert story("no-such-story") == []
