"""The runner on an in-memory broker (backbone.testing.memory_kafka) with a fake dead-letter
publisher and the real database: the ordering of database commit, offset commit, backoff and
rebalance callbacks, checked step by step."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from django.db import connection

from backbone.consumer import ConsumerRunner, DeadLetterBudget, RunnerOptions
from backbone.deadletters import DeadLetterPublishError
from backbone.envelope import Envelope
from backbone.kafka import physical_topic
from backbone.models import DeadLetter, InboxEntry
from backbone.subscriptions import Subscription
from backbone.testing import FakeMessage, envelope_for
from backbone.testing.memory_kafka import Commit, MemoryBroker, MemoryConsumer
from backbone.tests.consumer_probe import ProbeApplied, ProbeRecorded

pytestmark = pytest.mark.django_db(transaction=True)
pytest_plugins = ["backbone.tests.consumer_fixtures"]

TOPIC = physical_topic("orders")


@pytest.fixture(autouse=True)
def _clean_probe_rows() -> None:
    ProbeApplied.objects.filter(context="unit").delete()  # the probe tables outlive each test


@dataclass
class FakePublisher:
    published: list[int] = field(default_factory=list)
    flushed_in_transaction: list[bool] = field(default_factory=list)
    unavailable: int = 0  # this many flushes fail as a Kafka outage would

    def publish(self, record: Any, *, dead_letter_id: int, **details: Any) -> None:
        self.published.append(dead_letter_id)

    def flush(self) -> dict[int, str]:
        self.flushed_in_transaction.append(connection.in_atomic_block)
        if self.unavailable:
            self.unavailable -= 1
            raise DeadLetterPublishError(
                "dead-letter topic did not confirm the record: Local: Message timed out"
            )
        return {}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[tuple[float, bool]] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append((seconds, connection.in_atomic_block))
        self.now += seconds


def _message(partition: int, offset: int, key: str, seq: int) -> FakeMessage:
    event = ProbeRecorded(probe_key=key, seq=seq)
    return FakeMessage(TOPIC, partition, offset, key.encode(), event.to_json(), envelope_for(event).headers())


GROUP = "unit-group"


def _broker_with(messages: list[FakeMessage]) -> MemoryBroker:
    """A broker holding `messages` at their offsets, the group's committed offset at the first
    of each partition (what is before it is padding, never read)."""
    broker = MemoryBroker()
    first: dict[int, int] = {}
    for message in messages:
        log = broker.partitions(TOPIC)[message.partition()]
        while len(log) < message.offset():
            broker.append(TOPIC, key=b"padding", value=b"", partition=message.partition())
        broker.append(
            TOPIC,
            key=message.key(),
            value=message.value(),
            headers=message.headers(),
            partition=message.partition(),
        )
        first.setdefault(message.partition(), message.offset())
    broker.seek_group(GROUP, TOPIC, first)
    return broker


def _runner(
    messages: list[FakeMessage],
    handler: Callable[[ProbeRecorded, Envelope], None],
    clock: FakeClock | None = None,
    **options: Any,
) -> tuple[ConsumerRunner, MemoryConsumer, FakePublisher, list[dict[str, Any]]]:
    """The runner on a broker with `messages`; the commits it makes, with the database's state
    at each (in a transaction? how many inbox rows?), are in the returned list."""
    broker, publisher, clock = _broker_with(messages), FakePublisher(), clock or FakeClock()
    consumer = broker.consumer(GROUP)
    commits: list[dict[str, Any]] = []

    def note(commit: Commit) -> None:
        commits.append(
            {
                "offsets": {partition: offset for (_, partition), offset in commit.offsets.items()},
                "asynchronous": commit.asynchronous,
                "in_transaction": connection.in_atomic_block,
                "inbox_rows": InboxEntry.objects.count(),
            }
        )

    broker.commit_listeners.append(note)
    routes = {ProbeRecorded.type_name: [Subscription("unit", ProbeRecorded, handler)]}
    runner = ConsumerRunner(
        context="unit",
        group=GROUP,
        consumer=consumer,
        publisher=publisher,
        options=RunnerOptions(**{"idle_exit": 0.0, "retry_delay": 0.2, **options}),
        routes=routes,
        clock=clock,
        sleep=clock.sleep,
    )
    return runner, consumer, publisher, commits


def _record(event: ProbeRecorded, envelope: Envelope) -> None:
    ProbeApplied.objects.create(
        context="unit", probe_key=event.probe_key, seq=event.seq, event_id=envelope.id, correlation_id="-"
    )


def _seqs() -> list[int]:
    return list(ProbeApplied.objects.filter(context="unit").order_by("id").values_list("seq", flat=True))


def test_offsets_are_committed_after_the_database_commit_and_point_at_the_next_record(
    probe_tables: None,
) -> None:
    runner, consumer, _, commits = _runner(
        [_message(0, 10, "a", 1), _message(1, 4, "b", 1), _message(0, 11, "a", 2)], _record
    )

    runner.run()

    first = commits[0]
    assert first["offsets"] == {0: 12, 1: 5}
    assert first["in_transaction"] is False
    assert first["inbox_rows"] == 3  # the rows were committed before the offsets
    assert commits[-1]["asynchronous"] is False  # the final commit on close
    assert consumer.closed


def test_a_failing_record_waits_outside_the_transaction_after_the_work_before_it_is_committed() -> None:
    failures = {"left": 2}

    def flaky(event: ProbeRecorded, envelope: Envelope) -> None:
        _record(event, envelope)  # written, then rolled back with the failure
        if event.seq == 2 and failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("the gateway timed out")

    clock = FakeClock()
    runner, _consumer, _, commits = _runner(
        [_message(0, 0, "a", 1), _message(0, 1, "a", 2), _message(0, 2, "a", 3)], flaky, clock
    )

    stats = runner.run()

    assert _seqs() == [1, 2, 3]
    assert (stats.handled, stats.retries, stats.dead_lettered) == (3, 2, 0)
    assert all(not in_transaction for _, in_transaction in clock.sleeps)
    # Exponential (0.2 s, then 0.4 s), each less up to half by jitter.
    assert (0.2 + 0.4) / 2 <= sum(seconds for seconds, _ in clock.sleeps) <= 0.2 + 0.4
    # Before the first pause, record 1 was committed in the database and in Kafka.
    assert commits[0]["offsets"] == {0: 1}
    assert commits[0]["inbox_rows"] == 1


def test_a_record_that_keeps_failing_becomes_a_dead_letter_and_the_others_are_applied(
    probe_tables: None,
) -> None:
    def broken_for_b(event: ProbeRecorded, envelope: Envelope) -> None:
        _record(event, envelope)
        if event.probe_key == "b":
            raise ValueError("cannot handle b")

    messages = [_message(0, n, key, n) for n, key in enumerate(["a", "c", "b", "d", "e"])]
    runner, _consumer, publisher, commits = _runner(messages, broken_for_b, max_attempts=3)

    stats = runner.run()

    assert _seqs() == [0, 1, 3, 4]
    dead_letter = DeadLetter.objects.get()
    assert (dead_letter.key, dead_letter.attempts, dead_letter.offset) == ("b", 3, 2)
    assert dead_letter.error.startswith("ValueError: cannot handle b\n\nTraceback")
    assert publisher.published == [dead_letter.pk]
    assert publisher.flushed_in_transaction == [True]  # the .dlq record is stored before the row commits
    assert commits[-1]["offsets"] == {0: 5}
    assert (stats.handled, stats.dead_lettered) == (4, 1)


def test_revoked_partitions_get_their_offsets_committed_synchronously() -> None:
    runner, consumer, _, commits = _runner(
        [_message(0, 7, "a", 1), _message(1, 3, "b", 1)], _record, batch_size=2
    )

    consumer.before_poll = [
        lambda consumer: None,
        lambda consumer: consumer.revoke([TopicPartition(TOPIC, 1)]),
    ]

    runner.run()

    revoke_commit = commits[1]
    assert revoke_commit == {
        "offsets": {1: 4},
        "asynchronous": False,
        "in_transaction": False,
        "inbox_rows": 2,
    }
    assert commits[-1]["offsets"] == {0: 8}  # on close: partition 1 is no longer ours


def test_lost_partitions_are_not_committed() -> None:
    runner, consumer, _, commits = _runner([_message(2, 0, "a", 1)], _record)
    consumer.before_poll = [lambda consumer: None, lambda consumer: consumer.lose([TopicPartition(TOPIC, 2)])]

    runner.run()

    assert [commit["asynchronous"] for commit in commits] == [True]  # nothing left on close


def test_a_stop_during_the_backoff_leaves_the_failing_record_uncommitted() -> None:
    def always_failing(event: ProbeRecorded, envelope: Envelope) -> None:
        raise RuntimeError("down")

    clock = FakeClock()
    runner, consumer, _, commits = _runner([_message(0, 5, "a", 1)], always_failing, clock)
    original_sleep = clock.sleep

    def sleep_then_sigterm(seconds: float) -> None:
        original_sleep(seconds)
        runner.stop()

    runner._sleep = sleep_then_sigterm

    runner.run()

    assert commits == []  # redelivered after the restart
    assert not DeadLetter.objects.exists()
    assert consumer.closed


def test_the_dead_letter_budget_is_a_sliding_window() -> None:
    clock = FakeClock()
    budget = DeadLetterBudget(limit=2, window=10, clock=clock)
    budget.spend(2)
    assert not budget.allows(1)
    clock.now = 10.5
    assert budget.allows(2)


def test_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    options = RunnerOptions(retry_delay=0.5, max_retry_delay=3.0)
    nominal = [0.5, 1.0, 2.0, 3.0, 3.0]
    delays = [options.backoff(attempt) for attempt in range(1, 6)]
    assert all(step / 2 <= delay <= step for delay, step in zip(delays, nominal, strict=True)), delays
    assert len({options.backoff(1) for _ in range(20)}) > 1, "consumers would retry in lockstep"


def test_a_dead_letter_topic_that_is_away_rolls_the_batch_back_and_the_runner_applies_it_again(
    probe_tables: None,
) -> None:
    bad = FakeMessage(TOPIC, 0, 2, b"bad", b"not an event", [])
    runner, _consumer, publisher, commits = _runner(
        [_message(0, 1, "a", 1), bad, _message(0, 3, "b", 1)], _record
    )
    publisher.unavailable = 2

    runner.run()

    assert _seqs() == [1, 1]  # both events applied once: the rolled-back attempts left nothing
    assert DeadLetter.objects.filter(key="bad").count() == 1
    assert publisher.flushed_in_transaction == [True, True, True]
    assert commits[-1]["offsets"] == {0: 4}


def test_once_traffic_pauses_the_applied_offsets_are_committed_again_synchronously(
    probe_tables: None,
) -> None:
    """An asynchronous commit may fail unseen; the idle commit makes the group's offset true."""
    clock = FakeClock()
    runner, consumer, _, commits = _runner(
        [_message(0, 7, "a", 1), _message(0, 8, "a", 2)], _record, clock=clock, idle_exit=1.0
    )

    def pass_time(consumer: MemoryConsumer) -> None:
        clock.now += 2.0  # the idle poll after this one ends the run

    consumer.before_poll = [lambda consumer: None, lambda consumer: None, pass_time]

    runner.run()

    assert [(commit["offsets"], commit["asynchronous"]) for commit in commits] == [
        ({0: 9}, True),  # after the database commit
        ({0: 9}, False),  # the first idle poll: confirmed
        ({0: 9}, False),  # on close
    ]


def _other_context_message(partition: int, offset: int, key: str) -> FakeMessage:
    """A record of a type the runner's context has no handler for (another context's business)."""
    message = _message(partition, offset, key, 0)
    headers = [
        (name, b"orders.SomebodyElsesEvent" if name == "ce_type" else value)
        for name, value in message.headers()
    ]
    return FakeMessage(TOPIC, partition, offset, message.key(), message.value(), headers)


def test_a_batch_of_only_other_contexts_events_opens_no_transaction_and_moves_the_offsets_on(
    probe_tables: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backbone.deadletters import KeyGate

    gate_loads: list[str] = []
    real_load = KeyGate.load.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        KeyGate, "load", classmethod(lambda cls, group: gate_loads.append(group) or real_load(cls, group))
    )
    messages = [_other_context_message(0, 0, "a"), _other_context_message(0, 1, "a"), _message(0, 2, "a", 1)]
    runner, _consumer, _, commits = _runner(messages, _record, batch_size=1)

    stats = runner.run()

    assert len(gate_loads) == 1  # the one batch with the context's own event
    assert (stats.skipped, stats.handled) == (2, 1)
    assert _seqs() == [1]
    assert [commit["offsets"] for commit in commits if commit["asynchronous"]] == [{0: 1}, {0: 2}, {0: 3}]
