"""The consumer runner's logic on real PostgreSQL and an in-memory broker (MemoryKafka, the
same consumer port as confluent-kafka): effectively once, in order, in story. The same runner
on the real broker: test_consumer_process.py, the end-to-end tests."""

import pytest

from backbone.kafka import group_id
from backbone.models import InboxEntry
from backbone.testing import envelope_for
from backbone.tests.consumer_probe import (
    MemoryKafka,
    ProbeIgnored,
    ProbeRecorded,
    ProbeView,
    applied,
)
from outbox.models import OutboxRecord

pytestmark = pytest.mark.django_db(transaction=True)
pytest_plugins = ["backbone.tests.consumer_fixtures"]


def test_events_are_applied_in_key_order_with_an_inbox_row_each(
    memory_probe_context: str, memory_kafka: MemoryKafka
) -> None:
    sent = [
        memory_kafka.send_event(ProbeRecorded(probe_key="k-1", seq=seq, amount=seq), flush=False)
        for seq in range(1, 21)
    ]
    memory_kafka.send_event(ProbeRecorded(probe_key="k-2", seq=1, amount=100))

    stats = memory_kafka.consume_until_caught_up(memory_probe_context)

    assert stats.handled == 21
    assert applied(memory_probe_context, "k-1") == list(range(1, 21))
    view = ProbeView.objects.get(context=memory_probe_context, probe_key="k-1")
    assert (view.total, view.events, view.last_seq) == (210, 20, 20)
    entry = InboxEntry.objects.get(consumer_group=group_id(memory_probe_context), event_id=sent[0].id)
    assert entry.event_type == "orders.ProbeRecorded"
    assert (entry.topic, entry.key, entry.correlation_id) == ("orders", "k-1", sent[0].correlation_id)
    assert entry.offset >= 0
    assert entry.handled_at is not None


def test_a_redelivered_event_is_applied_once(memory_probe_context: str, memory_kafka: MemoryKafka) -> None:
    first = memory_kafka.send_event(ProbeRecorded(probe_key="dup", seq=1, amount=5))
    # The same ce_id twice more: as a relay that died after delivery would publish it.
    for _ in range(2):
        memory_kafka.send_event(ProbeRecorded(probe_key="dup", seq=1, amount=5), event_id=first.id)

    # One record a batch: each copy reaches a transaction of its own, so only the inbox table
    # (not the runner's dedupe within one batch) can tell it was handled before.
    stats = memory_kafka.consume_until_caught_up(memory_probe_context, batch_size=1)

    assert applied(memory_probe_context, "dup") == [1]
    assert ProbeView.objects.get(context=memory_probe_context, probe_key="dup").total == 5
    assert (stats.handled, stats.duplicates) == (1, 2)
    assert InboxEntry.objects.filter(event_id=first.id).count() == 1


def test_an_event_seen_by_an_earlier_run_changes_nothing(
    memory_probe_context: str, memory_kafka: MemoryKafka
) -> None:
    first = memory_kafka.send_event(ProbeRecorded(probe_key="again", seq=1, amount=5))
    memory_kafka.consume_until_caught_up(memory_probe_context)

    memory_kafka.send_event(ProbeRecorded(probe_key="again", seq=1, amount=5), event_id=first.id)
    stats = memory_kafka.consume_until_caught_up(memory_probe_context)

    assert (stats.handled, stats.duplicates) == (0, 1)
    assert applied(memory_probe_context, "again") == [1]


def test_types_without_a_handler_are_skipped_and_their_offsets_advance(
    memory_probe_context: str, memory_kafka: MemoryKafka
) -> None:
    memory_kafka.send_event(ProbeIgnored(probe_key="skip"), flush=False)
    memory_kafka.send(  # a type no contract knows: skipped too, not dead-lettered
        "orders",
        key="skip",
        value=b"{}",
        headers=[("ce_type", b"orders.SomethingNew"), ("ce_id", b"x")],
    )
    ends = memory_kafka.end_offsets("orders")

    stats = memory_kafka.consume_until_caught_up(memory_probe_context)

    assert (stats.skipped, stats.handled, stats.dead_lettered) == (2, 0, 0)
    assert memory_kafka.committed_offsets(group_id(memory_probe_context), "orders") == ends


def test_an_older_contract_version_is_upcast_before_the_handler_sees_it(
    memory_probe_context: str, memory_kafka: MemoryKafka
) -> None:
    headers = envelope_for(ProbeRecorded(probe_key="v1", seq=1), data_version=1).headers()
    # Version 1 called the amount `quantity`; the registered upcaster renames it.
    memory_kafka.send(
        "orders", key="v1", value=b'{"probe_key": "v1", "seq": 1, "quantity": 7}', headers=headers
    )

    memory_kafka.consume_until_caught_up(memory_probe_context)

    assert ProbeView.objects.get(context=memory_probe_context, probe_key="v1").total == 7


def test_events_a_handler_emits_continue_the_story_of_their_cause(
    memory_probe_context: str, memory_kafka: MemoryKafka
) -> None:
    cause = memory_kafka.send_event(
        ProbeRecorded(probe_key="story", seq=1, follow_up=True), correlation_id="corr-story-1"
    )

    memory_kafka.consume_until_caught_up(memory_probe_context)

    emitted = OutboxRecord.objects.get(event_type="orders.ProbeFollowedUp", key="story")
    assert emitted.correlation_id == "corr-story-1"
    assert emitted.causation_id == cause.id
    assert emitted.payload == {"probe_key": "story", "seq": 1}
