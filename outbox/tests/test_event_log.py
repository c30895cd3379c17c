"""The event log: the relay records every event it publishes, so stories outlive the outbox."""

import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from backbone.correlation import correlation_scope
from backbone.tests.consumer_probe import ProbeContextFactory, ProbeRecorded, consume_until_caught_up
from outbox.emit import emit
from outbox.models import OutboxRecord, PublishedEvent
from outbox.story import story

from .conftest import emit_steps, publish_once

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("kafka_topics")]
pytest_plugins = ["backbone.tests.consumer_fixtures"]


def test_the_relay_records_each_event_where_kafka_stored_it(probe):
    key = str(uuid.uuid4())
    emit_steps(probe, key, range(3))

    publish_once()

    rows = OutboxRecord.objects.filter(key=key).order_by("id")
    records = {record.id: record for record in PublishedEvent.objects.filter(key=key)}
    assert len(records) == 3
    for row in rows:
        record = records[row.id]
        assert (record.event_id, record.event_type, record.correlation_id, record.topic) == (
            row.event_id,
            row.event_type,
            row.correlation_id,
            row.topic,
        )
        assert (record.kafka_partition, record.kafka_offset, record.published_at) == (
            row.kafka_partition,
            row.kafka_offset,
            row.published_at,
        )


def test_a_story_keeps_its_chain_after_outbox_retention_deleted_the_rows(
    make_probe_context: ProbeContextFactory,
) -> None:
    context = make_probe_context()
    correlation = f"old-story-{uuid.uuid4().hex[:8]}"
    with correlation_scope(correlation), transaction.atomic():
        emit(ProbeRecorded(probe_key=correlation, seq=1, follow_up=True))
    publish_once()
    consume_until_caught_up(context)
    publish_once()  # the follow-up the handler emitted
    before = story(correlation)

    # Four days later the relay's retention pass deletes the outbox rows (72 h by default).
    publish_once(clock=lambda: timezone.now() + timedelta(days=4), retention=timedelta(hours=72))

    assert not OutboxRecord.objects.filter(correlation_id=correlation).exists()
    after = story(correlation, subject=correlation)
    assert [e.event_type for e in after] == ["orders.ProbeRecorded", "orders.ProbeFollowedUp"]
    assert after[1].causation_id == after[0].event_id
    assert [(e.event_id, e.partition, e.offset, e.published_at) for e in after] == [
        (e.event_id, e.partition, e.offset, e.published_at) for e in before
    ]
    assert [h.context for h in after[0].handled_by] == [context]
    assert all(entry.payload == {} for entry in after)  # the log keeps no payload


def test_the_retention_pass_deletes_records_older_than_the_event_log_retention(probe):
    key = str(uuid.uuid4())
    emit_steps(probe, key, range(2))
    publish_once()
    assert PublishedEvent.objects.filter(key=key).count() == 2

    publish_once(clock=lambda: timezone.now() + timedelta(days=31), event_log_retention=timedelta(days=400))
    assert PublishedEvent.objects.filter(key=key).count() == 2  # outlived the outbox rows

    publish_once(
        clock=lambda: timezone.now() + timedelta(days=401),
        event_log_retention=timedelta(days=400),
        cleanup_chunk=1,  # one record per chunk: the pass goes on until none is left
    )
    assert not PublishedEvent.objects.filter(key=key).exists()
