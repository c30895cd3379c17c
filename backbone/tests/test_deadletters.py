"""Poison and invalid records: dead letters (table + .dlq), parked keys, replay and discard.

The runner and the dead-letter publisher run on an in-memory broker (MemoryKafka): what is
decided (dead-lettered, parked, committed) is the code's. What Kafka itself does with the
copies (size limits, recreated topics) is in test_hostile_records.py, on the real broker."""

import json
import threading

import pytest
from django.db import connection, transaction

from backbone.consumer import DeadLetterLimitReached
from backbone.deadletters import DeadLetterError, KeyGate, ReplayFailed, discard, lock_group, replay
from backbone.kafka import group_id
from backbone.models import DeadLetter, DeadLetterReason, DeadLetterStatus, InboxEntry, ParkedRecord
from backbone.testing import envelope_for
from backbone.tests.consumer_probe import (
    MemoryKafka,
    ProbeBroken,
    ProbeRecorded,
    applied,
)

pytestmark = pytest.mark.django_db(transaction=True)
pytest_plugins = ["backbone.tests.consumer_fixtures"]


def _probe(kafka: MemoryKafka, key: str, seq: int, *, partition: int | None = None) -> str:
    return kafka.send_event(ProbeRecorded(probe_key=key, seq=seq, amount=seq), partition=partition).id


def _read_dead_letter_topic(kafka: MemoryKafka, dead_letter_id: int) -> tuple[bytes | None, bytes, dict]:
    """The record the runner sent to orders.dlq for this dead letter: key, value, headers."""
    message = kafka.dead_letter_copy(dead_letter_id)
    headers = {name: value.decode() for name, value in message.headers() or []}
    return message.key(), message.value(), headers


def test_a_poison_record_is_dead_lettered_and_its_key_waits_while_others_flow(
    memory_probe_context: str, memory_kafka: MemoryKafka
) -> None:
    ProbeBroken.objects.create(probe_key="poison")
    poison_id = _probe(memory_kafka, "poison", 1)
    _probe(memory_kafka, "healthy", 1)
    _probe(memory_kafka, "poison", 2)
    _probe(memory_kafka, "healthy", 2)
    _probe(memory_kafka, "poison", 3)
    ends = memory_kafka.end_offsets("orders")

    stats = memory_kafka.consume_until_caught_up(memory_probe_context, max_attempts=3)

    dead_letter = DeadLetter.objects.get(consumer_group=group_id(memory_probe_context))
    assert dead_letter.status == DeadLetterStatus.PENDING
    assert dead_letter.reason == DeadLetterReason.HANDLER_FAILED
    assert (dead_letter.attempts, dead_letter.event_id, dead_letter.key) == (3, poison_id, "poison")
    assert dead_letter.error.startswith("ProbeHandlerBroken: the probe handler is broken for poison")
    assert dead_letter.context == memory_probe_context
    assert ["ce_id", poison_id] in dead_letter.headers
    assert b'"seq":1' in bytes(dead_letter.value)
    assert applied(memory_probe_context, "healthy") == [1, 2]
    assert applied(memory_probe_context, "poison") == []
    parked = ParkedRecord.objects.filter(dead_letter=dead_letter).order_by("offset")
    assert [json.loads(bytes(row.value))["seq"] for row in parked] == [2, 3]
    assert (stats.dead_lettered, stats.parked, stats.retries) == (1, 2, 2)
    # The partition moved on: everything is committed, the poison record included.
    assert memory_kafka.committed_offsets(group_id(memory_probe_context), "orders") == ends

    key, value, headers = _read_dead_letter_topic(memory_kafka, dead_letter.pk)
    assert (key, value) == (b"poison", bytes(dead_letter.value))
    assert headers["ce_id"] == poison_id
    assert headers["dlq_reason"] == "handler_failed"
    assert headers["dlq_attempts"] == "3"
    assert headers["dlq_error"].startswith("ProbeHandlerBroken")
    assert (headers["dlq_original_topic"], headers["dlq_original_offset"]) == (
        "orders",
        str(dead_letter.offset),
    )


def test_replay_applies_the_dead_letter_then_its_parked_records_in_order(
    memory_probe_context: str, memory_kafka: MemoryKafka
) -> None:
    ProbeBroken.objects.create(probe_key="fixme")
    for seq in (1, 2, 3):
        _probe(memory_kafka, "fixme", seq)
    memory_kafka.consume_until_caught_up(memory_probe_context, max_attempts=2)
    dead_letter = DeadLetter.objects.get(consumer_group=group_id(memory_probe_context))
    with pytest.raises(ReplayFailed, match="failed again: ProbeHandlerBroken"):
        replay(
            dead_letter_id=dead_letter.pk, publisher_factory=memory_kafka.publisher
        )  # the bug is not fixed yet
    dead_letter.refresh_from_db()
    assert (dead_letter.status, dead_letter.attempts) == (DeadLetterStatus.PENDING, 3)

    ProbeBroken.objects.filter(probe_key="fixme").delete()  # the fix is deployed
    release = replay(dead_letter_id=dead_letter.pk, publisher_factory=memory_kafka.publisher)

    assert applied(memory_probe_context, "fixme") == [1, 2, 3]
    assert (release.applied, release.still_parked, release.new_dead_letter_id) == (3, 0, None)
    dead_letter.refresh_from_db()
    assert dead_letter.status == DeadLetterStatus.REPLAYED
    assert dead_letter.resolved_at is not None
    assert not ParkedRecord.objects.exists()
    assert InboxEntry.objects.filter(consumer_group=group_id(memory_probe_context), key="fixme").count() == 3
    with pytest.raises(DeadLetterError, match="already replayed"):
        replay(dead_letter_id=dead_letter.pk, publisher_factory=memory_kafka.publisher)

    # The key flows again: the next record is applied, not parked.
    _probe(memory_kafka, "fixme", 4)
    memory_kafka.consume_until_caught_up(memory_probe_context)
    assert applied(memory_probe_context, "fixme") == [1, 2, 3, 4]


def test_discard_drops_the_dead_letter_and_applies_its_parked_records(
    memory_probe_context: str, memory_kafka: MemoryKafka
) -> None:
    ProbeBroken.objects.create(probe_key="drop")
    _probe(memory_kafka, "drop", 1)
    _probe(memory_kafka, "drop", 2)
    memory_kafka.consume_until_caught_up(memory_probe_context, max_attempts=1)
    dead_letter = DeadLetter.objects.get(consumer_group=group_id(memory_probe_context))
    ProbeBroken.objects.all().delete()

    release = discard(dead_letter_id=dead_letter.pk, publisher_factory=memory_kafka.publisher)

    assert applied(memory_probe_context, "drop") == [2]
    assert release.applied == 1
    dead_letter.refresh_from_db()
    assert dead_letter.status == DeadLetterStatus.DISCARDED


def test_a_parked_record_that_fails_on_release_becomes_the_next_dead_letter(
    memory_probe_context: str, memory_kafka: MemoryKafka
) -> None:
    ProbeBroken.objects.create(probe_key="chain")
    _probe(memory_kafka, "chain", 1)
    headers = envelope_for(ProbeRecorded(probe_key="chain", seq=2)).headers()
    memory_kafka.send("orders", key="chain", value=b"{not json", headers=headers)
    _probe(memory_kafka, "chain", 3)
    memory_kafka.consume_until_caught_up(memory_probe_context, max_attempts=1)
    first = DeadLetter.objects.get(consumer_group=group_id(memory_probe_context))
    assert ParkedRecord.objects.filter(dead_letter=first).count() == 2
    ProbeBroken.objects.all().delete()

    release = replay(dead_letter_id=first.pk, publisher_factory=memory_kafka.publisher)

    assert applied(memory_probe_context, "chain") == [1]
    second = DeadLetter.objects.get(pk=release.new_dead_letter_id)
    assert (second.reason, second.status, second.key) == (DeadLetterReason.INVALID_RECORD, "pending", "chain")
    assert list(ParkedRecord.objects.values_list("dead_letter_id", flat=True)) == [second.pk]
    _read_dead_letter_topic(memory_kafka, second.pk)  # it went to orders.dlq too

    discard(dead_letter_id=second.pk, publisher_factory=memory_kafka.publisher)
    assert applied(memory_probe_context, "chain") == [1, 3]


def test_invalid_records_are_dead_lettered_at_once_with_the_reason(
    memory_probe_context: str, memory_kafka: MemoryKafka
) -> None:
    def headers(key: str, **envelope: object) -> list[tuple[str, bytes]]:
        return envelope_for(ProbeRecorded(probe_key=key, seq=1), **envelope).headers()

    memory_kafka.send("orders", key="bad-json", value=b"{oops", headers=headers("bad-json"))
    memory_kafka.send("orders", key="no-headers", value=b'{"probe_key": "no-headers", "seq": 1}', headers=[])
    memory_kafka.send(
        "orders",
        key="too-new",
        value=b'{"probe_key": "too-new", "seq": 1}',
        headers=headers("too-new", data_version=99),
        flush=False,
    )
    memory_kafka.send(
        "orders",
        key="mismatch",
        value=b'{"probe_key": "mismatch", "seq": "one"}',
        headers=headers("mismatch"),
    )

    stats = memory_kafka.consume_until_caught_up(memory_probe_context)

    letters = {d.key: d for d in DeadLetter.objects.filter(consumer_group=group_id(memory_probe_context))}
    assert set(letters) == {"bad-json", "no-headers", "too-new", "mismatch"}
    invalid = [letters[key] for key in ("bad-json", "no-headers", "mismatch")]
    assert all(d.reason == DeadLetterReason.INVALID_RECORD and d.attempts == 1 for d in invalid)
    assert "Invalid JSON" in letters["bad-json"].error
    assert "missing CloudEvents headers: ce_specversion, ce_id" in letters["no-headers"].error
    # Kept for a consumer that knows the version (see test_contract_evolution.py), not spent.
    assert letters["too-new"].reason == DeadLetterReason.NEWER_VERSION
    assert letters["too-new"].error == "orders.ProbeRecorded v99 is newer than this consumer reads (v2)"
    assert "seq" in letters["mismatch"].error
    assert (stats.retries, stats.handled, stats.dead_lettered, stats.parked) == (0, 0, 3, 1)


def test_the_dead_letter_limit_stops_the_runner_after_committing_the_work_done(
    memory_probe_context: str, memory_kafka: MemoryKafka
) -> None:
    # One partition, so "before" is surely done before the limit stops the runner.
    _probe(memory_kafka, "before", 1, partition=0)
    for number in range(5):
        memory_kafka.send("orders", key=f"garbage-{number}", value=b"garbage", headers=[], partition=0)
    _probe(memory_kafka, "after", 1, partition=0)

    with pytest.raises(DeadLetterLimitReached, match="more than 3 dead letters within 600 s"):
        memory_kafka.consume_until_caught_up(memory_probe_context, dead_letter_limit=3)

    assert DeadLetter.objects.filter(consumer_group=group_id(memory_probe_context)).count() == 3
    assert applied(memory_probe_context, "before") == [1]

    # Restarted with room for more: nothing done before is read again, the rest is done now.
    stats = memory_kafka.consume_until_caught_up(memory_probe_context, dead_letter_limit=10)
    assert (stats.dead_lettered, stats.skipped, stats.duplicates) == (2, 0, 0)
    assert applied(memory_probe_context, "after") == [1]
    assert applied(memory_probe_context, "before") == [1]


def test_a_consumer_batch_waits_while_a_dead_letter_is_being_released() -> None:
    """Replay holds the group's lock alone, so a batch never parks a record behind a dead
    letter that is being released (it would be stranded) nor applies one before its elders."""
    dead_letter = DeadLetter.objects.create(
        consumer_group="g-lock", context="c", topic="orders", partition=0, offset=1, key="k",
        reason=DeadLetterReason.HANDLER_FAILED, error="boom",
    )  # fmt: skip
    holding, release = threading.Event(), threading.Event()
    seen: dict[str, KeyGate] = {}

    def replaying() -> None:
        with transaction.atomic():
            lock_group("g-lock", exclusive=True)
            DeadLetter.objects.filter(pk=dead_letter.pk).update(status=DeadLetterStatus.REPLAYED)
            holding.set()
            release.wait(30)
        connection.close()

    def consuming() -> None:
        with transaction.atomic():
            seen["gate"] = KeyGate.load("g-lock")
        connection.close()

    replay_thread = threading.Thread(target=replaying)
    replay_thread.start()
    assert holding.wait(30)
    batch_thread = threading.Thread(target=consuming)
    batch_thread.start()
    batch_thread.join(timeout=1)
    assert batch_thread.is_alive()  # waiting for the release to commit
    release.set()
    batch_thread.join(timeout=30)
    replay_thread.join(timeout=30)

    assert seen["gate"].blocked == {}  # it saw the key unblocked, not the pending dead letter
