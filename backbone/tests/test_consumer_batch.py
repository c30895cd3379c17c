"""Batch handlers (`@subscribe_batch`) in the real runner, on real PostgreSQL and an in-memory
broker (MemoryKafka): one call per batch, offset order, inbox dedupe, poison events alone, no
emitting."""

import pytest

from backbone.deadletters import replay
from backbone.kafka import group_id
from backbone.models import DeadLetter, DeadLetterReason, DeadLetterStatus, InboxEntry, ParkedRecord
from backbone.tests.consumer_probe import (
    MemoryKafka,
    ProbeBroken,
    ProbeContextFactory,
    ProbeRecorded,
    applied,
    batch_sizes,
)
from outbox.models import OutboxRecord

pytestmark = pytest.mark.django_db(transaction=True)
pytest_plugins = ["backbone.tests.consumer_fixtures"]


@pytest.fixture
def batch_probe_context(make_memory_probe_context: ProbeContextFactory) -> str:
    return make_memory_probe_context(batch=True)


def _probe(kafka: MemoryKafka, key: str, seq: int, **envelope: str) -> str:
    return kafka.send_event(ProbeRecorded(probe_key=key, seq=seq, amount=seq), **envelope).id


def test_a_batch_handler_gets_the_batch_at_once_in_offset_order(
    batch_probe_context: str, memory_kafka: MemoryKafka
) -> None:
    keys = ["b-1", "b-2", "b-3", "b-4"]  # spread over the topic's partitions
    for seq in range(1, 26):
        for key in keys:
            _probe(memory_kafka, key, seq)
    _probe(memory_kafka, "b-1", 26)

    stats = memory_kafka.consume_until_caught_up(batch_probe_context)

    assert stats.handled == 101
    for key in keys:  # rows are written in the order the handler was given the events
        assert applied(batch_probe_context, key) == list(range(1, 27 if key == "b-1" else 26))
    sizes = batch_sizes(batch_probe_context)
    assert sum(sizes) == 101
    assert len(sizes) < 101  # at least one call carried several events
    assert max(sizes) > 1


def test_redelivered_events_are_not_given_to_the_batch_handler_again(
    batch_probe_context: str, memory_kafka: MemoryKafka
) -> None:
    first = _probe(memory_kafka, "again", 1)
    memory_kafka.consume_until_caught_up(batch_probe_context)

    # A redelivery from an earlier batch, a new event, and the new event twice within the batch.
    _probe(memory_kafka, "again", 1, event_id=first)
    second = _probe(memory_kafka, "again", 2)
    _probe(memory_kafka, "again", 2, event_id=second)
    stats = memory_kafka.consume_until_caught_up(batch_probe_context)

    assert (stats.handled, stats.duplicates) == (1, 2)
    assert applied(batch_probe_context, "again") == [1, 2]
    assert batch_sizes(batch_probe_context) == [1, 1]
    assert InboxEntry.objects.filter(consumer_group=group_id(batch_probe_context), key="again").count() == 2


def test_a_poison_event_in_a_batch_is_dead_lettered_alone(
    batch_probe_context: str, memory_kafka: MemoryKafka
) -> None:
    ProbeBroken.objects.create(probe_key="batch-poison")
    _probe(memory_kafka, "batch-ok", 1)
    poison_id = _probe(memory_kafka, "batch-poison", 1)
    _probe(memory_kafka, "batch-ok", 2)
    _probe(memory_kafka, "batch-poison", 2)  # parked behind the dead letter
    _probe(memory_kafka, "batch-ok", 3)
    ends = memory_kafka.end_offsets("orders")

    stats = memory_kafka.consume_until_caught_up(batch_probe_context, max_attempts=3)

    dead_letter = DeadLetter.objects.get(consumer_group=group_id(batch_probe_context))
    assert (dead_letter.event_id, dead_letter.attempts) == (poison_id, 3)
    assert dead_letter.reason == DeadLetterReason.HANDLER_FAILED
    assert dead_letter.error.startswith("ProbeHandlerBroken: the probe handler is broken for batch-poison")
    assert applied(batch_probe_context, "batch-ok") == [1, 2, 3]
    assert applied(batch_probe_context, "batch-poison") == []
    assert ParkedRecord.objects.filter(dead_letter=dead_letter).count() == 1
    assert (stats.handled, stats.dead_lettered, stats.parked) == (3, 1, 1)
    assert memory_kafka.committed_offsets(group_id(batch_probe_context), "orders") == ends

    # Replay calls the batch handler with the dead letter alone, then with the parked event.
    ProbeBroken.objects.filter(probe_key="batch-poison").delete()
    release = replay(dead_letter_id=dead_letter.pk, publisher_factory=memory_kafka.publisher)

    assert release.applied == 2
    assert applied(batch_probe_context, "batch-poison") == [1, 2]
    dead_letter.refresh_from_db()
    assert dead_letter.status == DeadLetterStatus.REPLAYED


def test_a_batch_handler_cannot_emit(batch_probe_context: str, memory_kafka: MemoryKafka) -> None:
    memory_kafka.send_event(ProbeRecorded(probe_key="batch-emit", seq=1, follow_up=True))

    stats = memory_kafka.consume_until_caught_up(batch_probe_context, max_attempts=2)

    dead_letter = DeadLetter.objects.get(consumer_group=group_id(batch_probe_context))
    assert dead_letter.error.startswith("NoSingleStoryError: batch handler")
    assert "must not emit events" in dead_letter.error
    assert stats.dead_lettered == 1
    assert not OutboxRecord.objects.filter(event_type="orders.ProbeFollowedUp", key="batch-emit").exists()
