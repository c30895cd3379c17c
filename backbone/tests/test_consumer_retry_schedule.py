"""Retries on a schedule: a failed record waits in the table, not in the consumer, for its
next try; its key waits behind it while the other keys of the partition flow."""

import uuid
from collections import Counter
from collections.abc import Callable

import pytest
from django.core.management import CommandError, call_command

from backbone.consumer import RunnerOptions
from backbone.envelope import Envelope
from backbone.kafka import group_id
from backbone.models import DeadLetter, DeadLetterReason, DeadLetterStatus, ParkedRecord
from backbone.subscriptions import subscribe
from backbone.tests.consumer_probe import (
    PROBE_TOPICS,
    ProbeApplied,
    ProbeBroken,
    ProbeRecorded,
    applied,
    consume_until_caught_up,
    run_consume,
    send_event,
    start_group_at_end,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]
pytest_plugins = ["backbone.tests.consumer_fixtures"]

SCHEDULE = (0.3, 0.3, 0.3)  # seconds in the test; minutes in production


def _flaky_context(fail_first: dict[str, int]) -> tuple[str, Counter[str]]:
    """A context whose handler fails the first N attempts for some keys, then succeeds; the
    attempts are counted in memory, outside the transactions that roll back."""
    context = f"flaky_{uuid.uuid4().hex[:10]}"
    attempts: Counter[str] = Counter()

    def record(event: ProbeRecorded, envelope: Envelope) -> None:
        attempts[event.probe_key] += 1
        if attempts[event.probe_key] <= fail_first.get(event.probe_key, 0):
            raise ConnectionError(f"the gateway is down for {event.probe_key}")
        ProbeApplied.objects.create(
            context=context,
            probe_key=event.probe_key,
            seq=event.seq,
            event_id=envelope.id,
            correlation_id=envelope.correlation_id,
        )

    handler: Callable[[ProbeRecorded, Envelope], None] = record
    subscribe(ProbeRecorded, context=context)(handler)
    start_group_at_end(group_id(context), PROBE_TOPICS)
    return context, attempts


def _send_on_one_partition(*events: tuple[str, int]) -> None:
    for key, seq in events:
        send_event(ProbeRecorded(probe_key=key, seq=seq), partition=0, flush=False)
    send_event(ProbeRecorded(probe_key="last", seq=1), partition=0)


def test_a_record_failing_a_few_times_is_applied_on_schedule_while_other_keys_flow(
    probe_tables: None, kafka_topics: list[str]
) -> None:
    context, attempts = _flaky_context({"gateway": 3})
    _send_on_one_partition(("gateway", 1), ("gateway", 2), ("other", 1), ("other", 2))

    stats = consume_until_caught_up(context, retry_schedule=SCHEDULE)

    assert applied(context, "gateway") == [1, 2]  # its order kept: seq 2 waited behind seq 1
    assert applied(context, "other") == [1, 2]
    assert attempts["gateway"] == 5  # seq 1: three failures and the fourth try; seq 2: once
    # The other key of the partition did not wait for the retries.
    order = list(ProbeApplied.objects.filter(context=context).order_by("id").values_list("probe_key", "seq"))
    assert order.index(("other", 2)) < order.index(("gateway", 1))
    assert order.index(("last", 1)) < order.index(("gateway", 1))
    assert not DeadLetter.objects.filter(consumer_group=group_id(context)).exists()
    assert not ParkedRecord.objects.filter(consumer_group=group_id(context)).exists()
    assert stats.dead_lettered == 0
    assert stats.retries == 3


def test_a_record_still_failing_after_the_schedule_becomes_a_dead_letter(
    probe_tables: None, kafka_topics: list[str]
) -> None:
    context, attempts = _flaky_context({"gateway": 100})
    _send_on_one_partition(("gateway", 1), ("gateway", 2), ("other", 1))

    stats = consume_until_caught_up(context, retry_schedule=SCHEDULE)

    letter = DeadLetter.objects.get(consumer_group=group_id(context))
    assert (letter.status, letter.reason, letter.key) == (
        DeadLetterStatus.PENDING,
        DeadLetterReason.HANDLER_FAILED,
        "gateway",
    )
    assert letter.attempts == len(SCHEDULE) + 1 == attempts["gateway"]
    assert letter.error.startswith("ConnectionError: the gateway is down for gateway")
    assert letter.retry_at is None
    parked = ParkedRecord.objects.filter(dead_letter=letter)
    assert parked.count() == 1  # seq 2 waits behind the dead letter now
    assert applied(context, "gateway") == []
    assert applied(context, "other") == [1]
    assert stats.dead_lettered == 1


def test_a_context_schedule_from_the_environment_in_the_consume_command(probe_context: str) -> None:
    ProbeBroken.objects.create(probe_key="env-broken")
    send_event(ProbeRecorded(probe_key="env-broken", seq=1), partition=1, flush=False)
    send_event(ProbeRecorded(probe_key="env-fine", seq=1), partition=1)

    result = run_consume(
        probe_context,
        "--once",
        "--idle-exit",
        "60",
        **{f"CONSUMER_RETRY_SCHEDULE_{probe_context.upper()}": "0.2,0.4"},
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert "3 attempts (retries after 0.2, 0.4 s)" in result.stderr
    letter = DeadLetter.objects.get(consumer_group=group_id(probe_context))
    assert (letter.status, letter.attempts) == (DeadLetterStatus.PENDING, 3)
    assert applied(probe_context, "env-fine") == [1]


def test_the_schedule_setting_and_flag_are_read() -> None:
    assert RunnerOptions.from_settings("x", retry_schedule=(1.0, 5.0)).attempts == 3
    assert RunnerOptions.from_settings("x").retry_schedule == ()
    with pytest.raises(CommandError, match="'1,soon': expected seconds separated by commas"):
        call_command("consume", "orders", "--retry-schedule", "1,soon")
