"""The relay on the real test database with a fake producer: failures, stalls, leadership."""

import logging
import re
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection

from backbone.testing import wait_for
from outbox.backoff import StopFlag
from outbox.leader import RELAY_LOCK_KEY, AnotherLeader
from outbox.models import OutboxRecord
from outbox.relay import database_connector

from .conftest import admin_connection, emit_steps, make_relay, publish_once
from .fakes import FakeProducer

pytestmark = pytest.mark.django_db(transaction=True)


def unpublished(key: str) -> list[int]:
    return list(OutboxRecord.objects.filter(key=key, published_at__isnull=True).values_list("id", flat=True))


def published_offsets(key: str) -> list[int]:
    rows = OutboxRecord.objects.filter(key=key).order_by("id")
    assert all(row.is_published for row in rows)
    return [row.kafka_offset for row in rows]


BackgroundRelay = Callable[..., StopFlag]


@pytest.fixture
def background() -> Iterator[BackgroundRelay]:
    """Run relays in threads (`background(producer=..., **options)` returns its stop flag);
    all are stopped and joined afterwards."""
    running: list[tuple[StopFlag, threading.Thread]] = []

    def start(*, producer: FakeProducer, **options: Any) -> StopFlag:
        stop = StopFlag()
        relay = make_relay(producer_factory=lambda: producer, stop=stop, **options)
        thread = threading.Thread(target=relay.run, daemon=True)
        thread.start()
        running.append((stop, thread))
        return stop

    yield start
    for stop, thread in running:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the relay did not stop"


def key_in_partition(partition: int) -> str:
    """A fresh key the fake producer puts in `partition` (of 3)."""
    while True:
        key = str(uuid.uuid4())
        if zlib.crc32(key.encode()) % 3 == partition:
            return key


def test_a_failed_row_and_the_rest_of_its_aggregate_are_published_again_in_order(probe):
    a, b = key_in_partition(0), key_in_partition(1)
    ids_a = emit_steps(probe, a, range(3))
    emit_steps(probe, b, range(3))
    producer = FakeProducer(fail_event_ids={ids_a[1]})  # step 1 of `a` fails once

    publish_once(producer_factory=lambda: producer, max_backoff=0.05)

    records_a = [r for r in producer.produced if r.key == a]
    assert [r.headers["ce_id"] for r in records_a] == [ids_a[0], ids_a[1], ids_a[1], ids_a[2]]
    offsets = published_offsets(a)
    assert offsets == sorted(offsets)  # Kafka holds `a` in step order (the retry's offset counts)
    assert len([r for r in producer.produced if r.key == b]) == 3  # `b` (another partition) went once


def test_a_failed_row_holds_back_the_later_rows_of_its_partition(probe):
    a, b = key_in_partition(2), key_in_partition(2)
    ids_a = emit_steps(probe, a, range(2))
    ids_b = emit_steps(probe, b, range(2))
    producer = FakeProducer(fail_event_ids={ids_a[0]})

    publish_once(producer_factory=lambda: producer, max_backoff=0.05)

    # `b` was confirmed behind the gap, so it was published again after `a`'s retry.
    sent = [r.headers["ce_id"] for r in producer.produced]
    assert sent == [ids_a[0], ids_b[0], ids_b[1], ids_a[0], ids_a[1], ids_b[0], ids_b[1]]
    assert unpublished(a) == unpublished(b) == []


def test_a_fatal_producer_error_starts_a_new_producer(probe):
    key = f"fatal-{uuid.uuid4()}"
    ids = emit_steps(probe, key, range(2))
    producers = [FakeProducer(fatal=True, fail_event_ids={ids[0]}), FakeProducer()]
    made: list[FakeProducer] = []

    def factory() -> FakeProducer:
        made.append(producers[len(made)])
        return made[-1]

    publish_once(producer_factory=factory, max_backoff=0.05)

    assert len(made) == 2
    assert [r.headers["ce_id"] for r in made[1].produced] == ids
    assert unpublished(key) == []


def test_the_relay_starts_while_kafka_is_down_and_says_so(probe, caplog, background):
    key = f"down-{uuid.uuid4()}"
    emit_steps(probe, key, range(2))
    caplog.set_level(logging.INFO, logger="outbox")

    stop = background(producer=FakeProducer(stalled=True, no_metadata=True), kafka_address="kafka:1")
    wait_for(lambda: "Kafka unavailable" in caplog.text, what="the unavailability report")
    stop.set()

    delay = re.search(r"Kafka unavailable at kafka:1; 2 rows waiting; retrying in ([\d.]+)s", caplog.text)
    assert delay, "the unavailability report names its delay"
    assert 0.5 <= float(delay.group(1)) <= 1.0, "1 s, less up to half by jitter"
    assert len(unpublished(key)) == 2


def test_without_commit_timestamps_the_relay_warns_and_publishes_in_id_order(probe, caplog, monkeypatch):
    monkeypatch.setattr("outbox.relay.commit_timestamps_tracked", lambda connection: False)
    key = str(uuid.uuid4())
    first, second = emit_steps(probe, key, [1]), emit_steps(probe, key, [2])
    OutboxRecord.objects.filter(event_id=first[0]).update(id=10_000_000)  # now last in id order
    producer = FakeProducer()
    caplog.set_level(logging.WARNING, logger="outbox")

    publish_once(producer_factory=lambda: producer)

    assert "track_commit_timestamp is off: publishing in id order" in caplog.text
    assert [record.headers["ce_id"] for record in producer.produced] == second + first


def test_once_with_nothing_pending_returns_even_while_kafka_is_down():
    relay = publish_once(producer_factory=lambda: FakeProducer(stalled=True, no_metadata=True))
    assert relay.published == 0


def test_a_stalled_batch_is_reported_and_stays_unpublished_when_stopped(probe, caplog, background):
    key = f"stall-{uuid.uuid4()}"
    emit_steps(probe, key, range(3))
    caplog.set_level(logging.INFO, logger="outbox")

    # Metadata answers, deliveries never come; a stopping relay waits 0.2 s for them.
    producer = FakeProducer(stalled=True)
    stop = background(producer=producer, shutdown_grace=0.2)
    wait_for(lambda: "retrying in" in caplog.text, what="the stall report")
    stop.set()
    wait_for(lambda: "relay stopped" in caplog.text, what="the relay to stop")
    assert producer.purged == 3  # they will not go out behind the next leader's

    assert "has not confirmed 3 records yet; 3 rows waiting; retrying in 2.0s" in caplog.text
    assert "3 records were not confirmed by Kafka" in caplog.text
    assert len(unpublished(key)) == 3


def test_with_another_leader_once_refuses_and_a_relay_stands_by_until_it_goes(probe, caplog, background):
    key = f"standby-{uuid.uuid4()}"
    emit_steps(probe, key, range(2))
    producer = FakeProducer()
    caplog.set_level(logging.INFO, logger="outbox")
    other_leader = database_connector(connection.settings_dict)()
    other_leader.execute("SELECT pg_advisory_lock(%s)", (RELAY_LOCK_KEY,))
    try:
        with pytest.raises(AnotherLeader):
            publish_once(producer_factory=lambda: producer)
        background(producer=producer, standby_retry=0.1)
        wait_for(lambda: "standing by" in caplog.text, what="the relay to stand by")
        assert producer.produced == []
    finally:
        other_leader.close()  # the other leader dies: its lock goes with its session

    wait_for(lambda: not unpublished(key), what="the standby to take over and publish")
    assert len(producer.produced) == 2


def test_a_relay_that_loses_its_lock_stops_and_leads_again_once_it_is_free(probe, caplog, background):
    caplog.set_level(logging.INFO, logger="outbox")
    background(producer=FakeProducer(), standby_retry=0.1)
    wait_for(lambda: "is now the leader" in caplog.text, what="leadership")

    with admin_connection() as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks "
            "WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = %s)",
            (connection.settings_dict["NAME"],),
        )
    key = f"regained-{uuid.uuid4()}"
    emit_steps(probe, key, range(1))  # wakes the relay, which checks its lock before publishing

    wait_for(lambda: not unpublished(key), what="the relay to lead again and publish")
    assert "no longer the leader" in caplog.text
    assert caplog.text.count("is now the leader") == 2


def test_the_marks_of_wake_ups_close_together_are_written_in_one_statement(probe, background):
    """Three commits, three wake-ups, each published at once: their marks wait for each other
    (mark_hold) and go in one statement, one commit; meanwhile the rows held are not sent
    again, and each keeps the time Kafka confirmed it."""
    from backbone.testing.commits import counting

    key = str(uuid.uuid4())
    producer = FakeProducer()
    with counting() as commits:
        background(producer=producer, mark_hold=2.0)
        ids = []
        for step in range(3):
            ids += emit_steps(probe, key, [step])
            wait_for(lambda n=step + 1: len(producer.produced) == n, what=f"{step + 1} record(s) sent")
        assert unpublished(key), "marked before the hold ended"
        wait_for(lambda: not unpublished(key), timeout=10, what="the held marks")
    assert commits.count("outbox/store.py:mark_published") == 1, commits
    assert [r.headers["ce_id"] for r in producer.produced] == ids  # each once, in order
    times = list(OutboxRecord.objects.filter(key=key).order_by("id").values_list("published_at", flat=True))
    assert times == sorted(times)
    assert len(set(times)) == 3


def test_a_wake_up_lingers_for_the_commits_right_behind_it(probe, background):
    """Three commits 0.1 s apart, the first waking the relay: with a linger of 0.5 s one scan
    reads all three (one produce, one mark); without, each is a wake-up of its own."""
    from backbone.testing.commits import counting

    def scans_for_three_commits(linger: float) -> int:
        key, producer = str(uuid.uuid4()), FakeProducer()
        stop = background(producer=producer, linger=linger)
        emit_steps(probe, key, [0])  # the relay is up and idle once this is sent
        wait_for(lambda: len(producer.produced) == 1, what="the first record sent")
        with counting() as commits:
            for step in (1, 2, 3):
                emit_steps(probe, key, [step])
                time.sleep(0.1)
            wait_for(lambda: not unpublished(key), timeout=10, what="the three rows published")
        stop.set()
        return commits.count("outbox/store.py:pending_rows")

    assert scans_for_three_commits(0.5) == 1
    assert scans_for_three_commits(0.0) == 3
