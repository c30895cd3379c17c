"""manage.py audit against the real relay, Kafka and consumer runner: a clean story passes, and
each kind of discrepancy introduced by hand is reported with what to do."""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from backbone.correlation import correlation_scope
from backbone.kafka import group_id
from backbone.models import DeadLetter, InboxEntry, ParkedRecord
from backbone.tests.consumer_probe import (
    ProbeBroken,
    ProbeContextFactory,
    ProbeFollowedUp,
    ProbeRecorded,
    consume_until_caught_up,
)
from outbox.audit import AuditReport, Scope, audit
from outbox.audit_kafka import KafkaReader
from outbox.emit import emit
from outbox.models import PublishedEvent

from .conftest import publish_once

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("kafka_topics")]
pytest_plugins = ["backbone.tests.consumer_fixtures"]


@dataclass
class Story:
    correlation_id: str
    context: str

    def audit(self, **options: object) -> AuditReport:
        reader = KafkaReader()
        try:
            return audit(
                Scope(correlation_id=self.correlation_id), reader, contexts=[self.context], **options
            )  # type: ignore[arg-type]
        finally:
            reader.close()

    def records(self) -> list[PublishedEvent]:
        return list(
            PublishedEvent.objects.filter(correlation_id=self.correlation_id).order_by("kafka_offset")
        )


def emit_story(correlation_id: str, seqs: range, *, follow_up: bool = False) -> None:
    with correlation_scope(correlation_id), transaction.atomic():
        for seq in seqs:
            emit(ProbeRecorded(probe_key=correlation_id, seq=seq, follow_up=follow_up))


@pytest.fixture
def story(make_probe_context: ProbeContextFactory) -> Iterator[Story]:
    """Three events of one aggregate, published by the relay and handled by a probe context."""
    context = make_probe_context()
    correlation_id = f"audit-{uuid.uuid4().hex[:8]}"
    emit_story(correlation_id, range(1, 4))
    publish_once()
    consume_until_caught_up(context)
    return Story(correlation_id, context)


def kinds(report: AuditReport) -> list[str]:
    return [finding.kind for finding in report.discrepancies]


def test_a_story_handled_once_by_its_group_has_no_discrepancy(story: Story) -> None:
    report = story.audit()

    assert report.events == 3
    assert report.checks == 3  # one subscribed group per event
    assert report.discrepancies == []


def test_a_lost_inbox_row_is_reported_as_a_skipped_offset(story: Story) -> None:
    middle = story.records()[1]
    InboxEntry.objects.filter(event_id=middle.event_id).delete()

    report = story.audit()

    assert kinds(report) == ["skipped"]
    finding = report.discrepancies[0]
    assert group_id(story.context) in finding.what
    assert f"offset {middle.kafka_offset} " in finding.what
    assert str(middle.event_id) in finding.what
    assert f"--to-offset {middle.kafka_offset}" in finding.fix


def test_a_record_that_never_reached_kafka_is_reported(story: Story) -> None:
    last = story.records()[-1]
    last.pk, last.event_id, last.kafka_offset = last.pk + 1_000_000, uuid.uuid4(), last.kafka_offset + 50
    last.save(force_insert=True)  # marked published, but the partition never got that far

    report = story.audit()

    assert "not-on-kafka" in kinds(report)
    finding = next(f for f in report.discrepancies if f.kind == "not-on-kafka")
    assert str(last.event_id) in finding.what
    assert "never reached Kafka" in finding.what
    assert "UPDATE outbox SET published_at = NULL" in finding.fix


def test_a_record_at_another_offset_than_recorded_is_reported(story: Story) -> None:
    first, second, _ = story.records()
    PublishedEvent.objects.filter(pk=first.pk).update(kafka_offset=second.kafka_offset)

    report = story.audit()

    assert kinds(report) == ["other-record-on-kafka"]
    assert f"ce_id {second.event_id}" in report.discrepancies[0].what


def test_a_duplicate_effect_is_reported(make_probe_context: ProbeContextFactory) -> None:
    context = make_probe_context()
    correlation_id = f"audit-{uuid.uuid4().hex[:8]}"
    emit_story(correlation_id, range(1, 2), follow_up=True)
    publish_once()
    consume_until_caught_up(context)  # the handler emits ProbeFollowedUp, caused by the event
    cause = PublishedEvent.objects.get(correlation_id=correlation_id, event_type="orders.ProbeRecorded")
    with correlation_scope(correlation_id, causation_id=str(cause.event_id)), transaction.atomic():
        emit(ProbeFollowedUp(probe_key=correlation_id, seq=1))  # the same effect a second time
    publish_once()

    report = Story(correlation_id, context).audit()

    assert kinds(report) == ["duplicate-effect"]
    assert f"caused by the one event {cause.event_id}" in report.discrepancies[0].what


def test_events_a_group_has_not_reached_and_rows_never_published_are_reported(
    make_probe_context: ProbeContextFactory,
) -> None:
    context = make_probe_context()
    correlation_id = f"audit-{uuid.uuid4().hex[:8]}"
    emit_story(correlation_id, range(1, 3))
    publish_once()  # nobody consumes
    emit_story(correlation_id, range(3, 4))  # and this one stays in the outbox

    report = Story(correlation_id, context).audit(unpublished_grace=timedelta(0))

    assert kinds(report) == ["not-yet-handled", "unpublished"]
    assert "2 event(s)" in report.discrepancies[0].what
    assert f"manage.py consume {context}" in report.discrepancies[0].fix


def test_the_command_prints_each_discrepancy_and_fails(
    story: Story, capsys: pytest.CaptureFixture[str]
) -> None:
    call_command("audit", "--correlation-id", story.correlation_id, "--context", story.context)
    assert "no discrepancy" in capsys.readouterr().out

    InboxEntry.objects.filter(event_id=story.records()[0].event_id).delete()
    with pytest.raises(CommandError, match="1 discrepancies"):
        call_command("audit", "--correlation-id", story.correlation_id, "--context", story.context)
    out = capsys.readouterr().out
    assert "1. [skipped]" in out
    assert "what to do: stop `manage.py consume" in out


def test_kafka_out_of_reach_is_an_error_not_a_pass(story: Story, settings) -> None:
    settings.BACKBONE = {**settings.BACKBONE, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}  # nothing listens

    with pytest.raises(CommandError, match=r"could not be read .* nothing was audited"):
        call_command("audit", "--correlation-id", story.correlation_id, "--context", story.context)


def test_a_time_window_audits_the_events_published_in_it(
    story: Story, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second, third = story.records()
    InboxEntry.objects.filter(event_id=third.event_id).delete()
    since = min(record.published_at for record in (first, second, third)).isoformat()

    with pytest.raises(CommandError, match="1 discrepancies"):
        call_command("audit", "--since", since, "--context", story.context)

    out = capsys.readouterr().out
    assert "3 events" in out
    assert f"offset {third.kafka_offset} ({third.event_type} {third.event_id})" in out


def test_dead_lettered_and_parked_events_are_accounted_for(make_probe_context: ProbeContextFactory) -> None:
    context = make_probe_context()
    correlation_id = f"audit-{uuid.uuid4().hex[:8]}"
    ProbeBroken.objects.create(probe_key=correlation_id)  # the handler fails for this aggregate
    emit_story(correlation_id, range(1, 3))
    publish_once()
    consume_until_caught_up(context, max_attempts=2)
    group = group_id(context)
    assert DeadLetter.objects.filter(consumer_group=group).count() == 1  # the first event
    assert ParkedRecord.objects.filter(consumer_group=group).count() == 1  # the second, behind it

    report = Story(correlation_id, context).audit()

    assert report.checks == 2
    assert report.discrepancies == []
