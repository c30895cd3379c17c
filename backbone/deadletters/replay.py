"""Replay and discard: release a pending dead letter and the records parked behind it.

`replay()` applies the dead letter and then its parked followers in their original order;
`discard()` drops the dead letter and applies the followers. A follower that fails on
release becomes the new dead letter (with its `.dlq` copy) and the rest stay parked behind
it. Both hold the group's advisory lock exclusively (see gate.py), so the group's consumers
wait for the release instead of parking records behind a dead letter that is going away.

`replay_known_versions()` is what a consumer runs on start-up: the group's dead letters kept
because their version was newer than the code then knew (reason `newer_version`) are replayed
when this code reads that version, so a rolling deploy ends with them applied, in key order.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from .. import inbox
from ..models import DeadLetter, DeadLetterReason, DeadLetterStatus, ParkedRecord
from ..records import ConsumedRecord, Invalid, Newer, Routes, Unrouted, handle, route
from ..subscriptions import subscriptions
from .errors import DeadLetterError, ReplayFailed, describe_failure, summary
from .gate import lock_group
from .publisher import DeadLetterPublisher, KafkaDeadLetterPublisher
from .store import note_refused_copies, write_dead_letter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Release:
    """What a replay or discard did."""

    dead_letter_id: int
    status: str
    applied: int = 0
    still_parked: int = 0
    new_dead_letter_id: int | None = None


PublisherFactory = Callable[[], DeadLetterPublisher]


def replay(
    *,
    dead_letter_id: int,
    publisher_factory: PublisherFactory = KafkaDeadLetterPublisher.create,
    routes: Routes | None = None,
) -> Release:
    """Apply a pending dead letter with the current code, then the records parked behind it.

    Raises ReplayFailed (the dead letter stays pending, with the new error and one more
    attempt) when it fails again, and DeadLetterError when it is not pending. `routes` are the
    context's handlers in this process unless given (a runner passes its own).
    """
    with transaction.atomic():
        dead_letter = lock_pending(dead_letter_id)
        routes = routes if routes is not None else _routes(dead_letter.context)
        failure = apply_stored(stored_record(dead_letter), routes, group=dead_letter.consumer_group)
        if failure is not None:
            dead_letter.reason, dead_letter.error = failure
            dead_letter.attempts += 1
            dead_letter.updated_at = timezone.now()
            dead_letter.save(update_fields=["reason", "error", "attempts", "updated_at"])
        else:
            _resolve(dead_letter, DeadLetterStatus.REPLAYED)
            release = release_parked(dead_letter, routes, publisher_factory)
    if failure is not None:
        raise ReplayFailed(f"dead letter #{dead_letter_id} failed again: {summary(failure[1])}")
    log.info("dead letter #%s replayed; %s parked record(s) applied", dead_letter_id, release.applied - 1)
    return release


def replay_known_versions(*, group: str, routes: Routes, publisher_factory: PublisherFactory) -> int:
    """Replay the group's `newer_version` dead letters whose version this code now reads,
    oldest first; returns how many records that applied (parked followers included).

    One that fails for another reason stays pending with that reason, for an operator.
    """
    letters = DeadLetter.objects.filter(
        consumer_group=group, status=DeadLetterStatus.PENDING, reason=DeadLetterReason.NEWER_VERSION
    ).order_by("id")
    applied = 0
    for letter in list(letters):
        if isinstance(route(stored_record(letter), routes), Newer):
            continue  # still newer than this code: it waits for the next release
        try:
            release = replay(dead_letter_id=letter.pk, publisher_factory=publisher_factory, routes=routes)
        except ReplayFailed as error:
            log.warning("%s", error)
        except DeadLetterError:
            continue  # another member of the group (or an operator) released it first
        applied += release.applied
    return applied


def discard(
    *, dead_letter_id: int, publisher_factory: PublisherFactory = KafkaDeadLetterPublisher.create
) -> Release:
    """Drop a pending dead letter for good and apply the records parked behind it."""
    with transaction.atomic():
        dead_letter = lock_pending(dead_letter_id)
        _resolve(dead_letter, DeadLetterStatus.DISCARDED)
        release = release_parked(dead_letter, _routes(dead_letter.context), publisher_factory)
    log.info("dead letter #%s discarded; %s parked record(s) applied", dead_letter_id, release.applied)
    return release


def lock_pending(dead_letter_id: int) -> DeadLetter:
    dead_letter = DeadLetter.objects.filter(pk=dead_letter_id).first()
    if dead_letter is None:
        raise DeadLetterError(f"no dead letter #{dead_letter_id}")
    # The group lock first: the group's consumers finish their batch, and wait for us.
    lock_group(dead_letter.consumer_group, exclusive=True)
    dead_letter = DeadLetter.objects.select_for_update().get(pk=dead_letter_id)
    if not dead_letter.is_pending:
        raise DeadLetterError(f"dead letter #{dead_letter_id} is already {dead_letter.status}")
    return dead_letter


def _routes(context: str) -> Routes:
    routes = subscriptions.for_context(context)
    if not routes:
        raise DeadLetterError(
            f"context {context!r} has no handlers in this process; cannot apply its records"
        )
    return routes


def _resolve(dead_letter: DeadLetter, status: DeadLetterStatus) -> None:
    now = timezone.now()
    dead_letter.status = status
    dead_letter.resolved_at = now
    dead_letter.updated_at = now
    dead_letter.save(update_fields=["status", "resolved_at", "updated_at"])


def stored_record(row: DeadLetter | ParkedRecord) -> ConsumedRecord:
    return ConsumedRecord.from_stored(
        topic=row.topic,
        partition=row.partition,
        offset=row.offset,
        key=row.key,
        value=row.value,
        headers=row.headers,
    )


def apply_stored(
    record: ConsumedRecord, routes: Routes, *, group: str
) -> tuple[DeadLetterReason, str] | None:
    """Apply one stored record in a savepoint; returns why it failed, or None."""
    outcome = route(record, routes)
    if isinstance(outcome, Unrouted):
        return None  # the context no longer handles this type: nothing to apply
    if isinstance(outcome, Invalid):
        return DeadLetterReason.INVALID_RECORD, outcome.error
    if isinstance(outcome, Newer):
        return DeadLetterReason.NEWER_VERSION, outcome.error
    try:
        with transaction.atomic():
            if inbox.claim(group=group, items=[(record, outcome)]):
                handle(outcome, group=group)
    except Exception as error:
        return DeadLetterReason.HANDLER_FAILED, describe_failure(error)
    return None


def release_parked(dead_letter: DeadLetter, routes: Routes, publisher_factory: PublisherFactory) -> Release:
    parked = list(dead_letter.parked.order_by("partition", "offset"))
    applied = 1 if dead_letter.status == DeadLetterStatus.REPLAYED else 0
    for index, row in enumerate(parked):
        record = stored_record(row)
        failure = apply_stored(record, routes, group=dead_letter.consumer_group)
        row.delete()
        if failure is None:
            applied += 1
            continue
        new_id = _dead_letter_follower(dead_letter, record, failure, publisher_factory)
        rest = [later.pk for later in parked[index + 1 :]]
        ParkedRecord.objects.filter(pk__in=rest).update(dead_letter_id=new_id)
        log.warning(
            "parked record %s failed on release (%s): dead letter #%s, %s record(s) parked behind it",
            record.describe(),
            summary(failure[1]),
            new_id,
            len(rest),
        )
        return Release(dead_letter.pk, dead_letter.status, applied, len(rest), new_id)
    return Release(dead_letter.pk, dead_letter.status, applied)


def _dead_letter_follower(
    dead_letter: DeadLetter,
    record: ConsumedRecord,
    failure: tuple[DeadLetterReason, str],
    publisher_factory: PublisherFactory,
) -> int:
    reason, error = failure
    new_id = write_dead_letter(
        group=dead_letter.consumer_group,
        context=dead_letter.context,
        record=record,
        reason=reason,
        error=error,
        attempts=1,
    )
    assert new_id is not None, "a parked record cannot already be a pending dead letter"
    publisher = publisher_factory()
    publisher.publish(
        record,
        dead_letter_id=new_id,
        group=dead_letter.consumer_group,
        reason=reason,
        error=error,
        attempts=1,
    )
    # Before the commit: the row exists only once its .dlq copy is stored, or refused for good.
    note_refused_copies(publisher.flush())
    return new_id
