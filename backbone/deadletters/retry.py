"""Scheduled retries: a failed record waits in the table, not in the consumer, until it is due.

With a retry schedule (CONSUMER_RETRY_SCHEDULE[_<CONTEXT>], `consume --retry-schedule`, e.g.
"1,5,30,120,600" seconds), a record whose handler fails is not retried in a sleep loop: that
would hold the consumer out of poll() for minutes (past max.poll.interval.ms, the group
rebalances and another member meets the same record) and stop every other key of the
partition. Instead the runner writes it as a `retrying` row with `retry_at`, commits its
offset and moves on. The row blocks its key like a pending dead letter, so later records of
that key are parked behind it (per-key order holds) while other keys flow.

Between batches the runner calls `retry_due()`: each due row is applied again, holding the
group's lock exclusively like a replay. On success the row goes away and its parked records
are applied in order (a follower that fails there becomes a dead letter at once, as on
replay); on failure `retry_at` moves to the schedule's next delay; after the last one the row
becomes a pending dead letter, with its `.dlq` copy. The inbox makes every application
effectively once, whichever member of the group does it.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from ..models import DeadLetter, DeadLetterStatus
from ..records import Routes
from .errors import summary
from .gate import lock_group
from .publisher import DeadLetterPublisher
from .replay import apply_stored, release_parked, stored_record
from .store import note_refused_copies

log = logging.getLogger(__name__)


@dataclass
class RetryOutcome:
    """What `retry_due()` did: retries made, records applied (followers included), records
    to try again later, dead letters."""

    tried: int = 0
    applied: int = 0
    rescheduled: int = 0
    dead_lettered: int = 0


def next_retry_at(schedule: Sequence[float], attempts: int) -> datetime | None:
    """When to try again after `attempts` failed attempts; None once the schedule is spent."""
    if attempts > len(schedule):
        return None
    return timezone.now() + timedelta(seconds=schedule[attempts - 1])


def has_retries(group: str) -> bool:
    return DeadLetter.objects.filter(consumer_group=group, status=DeadLetterStatus.RETRYING).exists()


def retry_due(
    *, group: str, routes: Routes, schedule: Sequence[float], publisher: DeadLetterPublisher
) -> RetryOutcome:
    """Apply again the group's retrying records whose time has come, oldest first."""
    due = (
        DeadLetter.objects.filter(
            consumer_group=group, status=DeadLetterStatus.RETRYING, retry_at__lte=timezone.now()
        )
        .order_by("id")
        .values_list("id", flat=True)
    )
    outcome = RetryOutcome()
    for dead_letter_id in list(due):
        _retry(dead_letter_id, routes, schedule, publisher, outcome)
    return outcome


def _retry(
    dead_letter_id: int,
    routes: Routes,
    schedule: Sequence[float],
    publisher: DeadLetterPublisher,
    outcome: RetryOutcome,
) -> None:
    with transaction.atomic():
        letter = DeadLetter.objects.filter(pk=dead_letter_id).first()
        if letter is None:
            return
        lock_group(letter.consumer_group, exclusive=True)
        letter = DeadLetter.objects.select_for_update().get(pk=dead_letter_id)
        # Another member of the group (or an operator) may have got there first.
        if letter.status != DeadLetterStatus.RETRYING or letter.retry_at is None:
            return
        if letter.retry_at > timezone.now():
            return
        record = stored_record(letter)
        outcome.tried += 1
        failure = apply_stored(record, routes, group=letter.consumer_group)
        if failure is None:
            letter.status = DeadLetterStatus.REPLAYED  # for the count of applied followers
            release = release_parked(letter, routes, lambda: publisher)
            letter.delete()  # it never became a dead letter: nothing to keep
            outcome.applied += release.applied
            log.info(
                "%s applied on attempt %s; %s parked record(s) applied",
                record.describe(),
                letter.attempts + 1,
                release.applied - 1,
            )
            return
        reason, error = failure
        letter.attempts += 1
        letter.error, letter.reason = error, reason
        letter.updated_at = timezone.now()
        letter.retry_at = next_retry_at(schedule, letter.attempts)
        if letter.retry_at is not None:
            letter.save(update_fields=["attempts", "error", "reason", "updated_at", "retry_at"])
            outcome.rescheduled += 1
            log.warning(
                "%s failed (attempt %s), retrying at %s: %s",
                record.describe(),
                letter.attempts,
                letter.retry_at.isoformat(),
                summary(error),
            )
            return
        letter.status = DeadLetterStatus.PENDING
        letter.save(update_fields=["attempts", "error", "reason", "updated_at", "retry_at", "status"])
        publisher.publish(
            record,
            dead_letter_id=letter.pk,
            group=letter.consumer_group,
            reason=reason,
            error=error,
            attempts=letter.attempts,
        )
        # Before the commit, as in a batch: the row is a dead letter once its copy is stored.
        note_refused_copies(publisher.flush())
        outcome.dead_lettered += 1
        log.error(
            "%s dead-lettered as #%s after %s attempt(s), the retry schedule spent: %s",
            record.describe(),
            letter.pk,
            letter.attempts,
            summary(error),
        )
