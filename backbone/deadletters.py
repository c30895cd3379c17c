"""Dead letters: records a consumer group could not handle, kept until replayed or discarded.

A dead letter blocks its key for its group: later records of the same (topic, key) are parked
behind it, so one aggregate's events never apply out of order, while other keys keep
flowing. `replay()` applies the dead letter and then its parked followers in their original
order; `discard()` drops the dead letter and applies the followers. A follower that fails on
release becomes the new dead letter and the rest stay parked behind it.

Consumers read the pending dead letters of their group under a shared advisory lock that
replay and discard take exclusively, so a record is never parked behind a dead letter that
is being released (it would be stranded) nor applied before the followers being released.
"""

import json
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from confluent_kafka import KafkaError, KafkaException, Producer
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone

from . import inbox
from .kafka import physical_topic, producer_config
from .models import DeadLetter, DeadLetterReason, DeadLetterStatus, ParkedRecord
from .records import (
    MAX_ID_LENGTH,
    MAX_KEY_LENGTH,
    ConsumedRecord,
    Invalid,
    Routes,
    Unrouted,
    encode_headers,
    handle,
    route,
)
from .subscriptions import subscriptions
from .topics import TOPICS

log = logging.getLogger(__name__)

HEADER_PREFIX = "dlq_"
_MAX_HEADER_ERROR = 1000
_MAX_TYPE_LENGTH = 150


class DeadLetterError(Exception):
    """A replay or discard that cannot be done; the message says why in one line."""


class ReplayFailed(DeadLetterError):
    """The dead letter failed again on replay: it stays pending with the new error."""


class DeadLetterPublishError(RuntimeError):
    """Kafka did not confirm a record sent to a `.dlq` topic."""


def describe_failure(error: BaseException) -> str:
    """`Type: message`, then the traceback: the first line is the summary everywhere."""
    summary = f"{type(error).__name__}: {error}".strip()
    trace = "".join(traceback.format_exception(error)).rstrip()
    return f"{summary}\n\n{trace}"


def summary(error: str) -> str:
    return error.split("\n", 1)[0]


# --- Which keys are blocked ----------------------------------------------------------------

_PENDING = """
    SELECT id, topic, key, partition, "offset", record_id FROM dead_letter
    WHERE consumer_group = %s AND status = 'pending'
"""


def lock_group(group: str, *, exclusive: bool) -> None:
    """Transaction-scoped: consumers share it per batch, replay and discard hold it alone."""
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(hashtextextended(%s, 0))", [f"backbone.dead_letters:{group}"])


@dataclass
class KeyGate:
    """The pending dead letters of one group, as of this transaction."""

    blocked: dict[tuple[str, str], int] = field(default_factory=dict)
    # position -> identities of the dead letters there (a recreated topic reuses positions)
    dead_records: dict[tuple[str, int, int], set[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, group: str) -> "KeyGate":
        lock_group(group, exclusive=False)
        gate = cls()
        with connection.cursor() as cursor:
            cursor.execute(_PENDING, [group])
            for dead_letter_id, topic, key, partition, offset, record_id in cursor.fetchall():
                gate.dead_records.setdefault((topic, partition, offset), set()).add(record_id)
                if key is not None:
                    gate.blocked[(topic, key)] = dead_letter_id
        return gate

    def blocker(self, record: ConsumedRecord) -> int | None:
        """The dead letter a record must wait behind, if its key is blocked."""
        if record.key is None:
            return None
        return self.blocked.get((record.topic, record.key))

    def is_dead_letter(self, record: ConsumedRecord) -> bool:
        """A redelivery of a record that is already a pending dead letter: the same position
        and the same record (its ce_id); another record at that position is not skipped."""
        identities = self.dead_records.get(record.position)
        return identities is not None and record.identity in identities

    def block(self, record: ConsumedRecord, dead_letter_id: int) -> None:
        self.dead_records.setdefault(record.position, set()).add(record.identity)
        if record.key is not None:
            self.blocked[(record.topic, record.key)] = dead_letter_id


# --- Writing dead letters and parked records -----------------------------------------------

# A pending dead letter for the same record (a redelivery) is left as it is; a resolved one is
# opened again: the record was read again (a rebuild) and failed again.
_WRITE = """
    INSERT INTO dead_letter (consumer_group, context, topic, partition, "offset", record_id, key, headers,
                             value, event_id, event_type, correlation_id, reason, error, attempts, status)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s, %s, 'pending')
    ON CONFLICT (consumer_group, topic, partition, "offset", record_id) DO UPDATE
        SET reason = EXCLUDED.reason, error = EXCLUDED.error, attempts = EXCLUDED.attempts,
            status = 'pending', updated_at = now(), resolved_at = NULL
        WHERE dead_letter.status <> 'pending'
    RETURNING id
"""

_PARK = """
    INSERT INTO parked_record
        (dead_letter_id, consumer_group, topic, partition, "offset", record_id, key, headers, value)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)
    ON CONFLICT (consumer_group, topic, partition, "offset", record_id) DO NOTHING
"""


def write_dead_letter(
    *, group: str, context: str, record: ConsumedRecord, reason: DeadLetterReason, error: str, attempts: int
) -> int | None:
    """Store the record as a pending dead letter; None when it already is one (a redelivery)."""
    with connection.cursor() as cursor:
        cursor.execute(
            _WRITE,
            [
                group,
                context,
                record.topic,
                record.partition,
                record.offset,
                record.identity,
                _clip(record.key, MAX_KEY_LENGTH),
                json.dumps(encode_headers(record.headers)),
                record.value,
                _clip(record.header("ce_id"), MAX_ID_LENGTH) or "",
                _clip(record.header("ce_type"), _MAX_TYPE_LENGTH) or "",
                _clip(record.header("ce_correlationid"), MAX_ID_LENGTH) or "",
                reason.value,
                error,
                attempts,
            ],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def park(*, group: str, record: ConsumedRecord, dead_letter_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            _PARK,
            [
                dead_letter_id,
                group,
                record.topic,
                record.partition,
                record.offset,
                record.identity,
                record.key,
                json.dumps(encode_headers(record.headers)),
                record.value,
            ],
        )


def _clip(text: str | None, length: int) -> str | None:
    """Hostile headers and keys can be longer than any of ours: keep what the column holds
    (the whole record stays in `headers` and `value`)."""
    return text[:length] if text is not None else None


# --- The `<topic>.dlq` topics ----------------------------------------------------------------


class DeadLetterPublisher(Protocol):
    def publish(
        self,
        record: ConsumedRecord,
        *,
        dead_letter_id: int,
        group: str,
        reason: str,
        error: str,
        attempts: int,
    ) -> None: ...

    def flush(self) -> dict[int, str]:
        """Wait until every published record is stored. Returns the dead letters whose copy
        Kafka refused for good (id -> why); raises DeadLetterPublishError when it may work later."""


def dead_letter_topic(topic: str) -> str:
    spec = TOPICS.get(topic)
    return spec.dead_letter_topic if spec else f"{topic}.dlq"


# Refusals that no retry can change: the copy stays out of the topic, the row records why.
_REFUSED_FOR_GOOD = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_EXCEPTION,
    }
)
# Original headers beyond this many bytes are left out of the copy (the table keeps them).
_MAX_COPIED_HEADER_BYTES = 16 * 1024


def copy_for_topic(record: ConsumedRecord) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """The value and headers a `.dlq` copy carries: at most EVENT_MAX_BYTES of the value and
    16 KiB of the original headers, so the copy of a record too large to handle still fits the
    topic; what was cut is said in `dlq_value_bytes` / `dlq_headers_bytes`."""
    value, headers = record.value, list(record.headers)
    if value is not None and len(value) > settings.EVENT_MAX_BYTES:
        headers.append((f"{HEADER_PREFIX}value_bytes", str(len(value)).encode()))
        value = value[: settings.EVENT_MAX_BYTES]
    header_bytes = sum(len(name) + len(content) for name, content in record.headers)
    if header_bytes > _MAX_COPIED_HEADER_BYTES:
        dropped = (f"{HEADER_PREFIX}headers_bytes", str(header_bytes).encode())
        headers = [dropped, *headers[len(record.headers) :]]
    return value, headers


class KafkaDeadLetterPublisher:
    """Sends the original key, value and headers, plus `dlq_*` headers saying what went wrong."""

    def __init__(self, producer: Producer, *, flush_timeout: float = 30.0) -> None:
        self._producer = producer
        self._flush_timeout = flush_timeout
        self._failures: list[str] = []
        self._refused: dict[int, str] = {}

    @classmethod
    def create(cls) -> "KafkaDeadLetterPublisher":
        return cls(Producer(producer_config()))

    def publish(
        self,
        record: ConsumedRecord,
        *,
        dead_letter_id: int,
        group: str,
        reason: str,
        error: str,
        attempts: int,
    ) -> None:
        value, headers = copy_for_topic(record)
        headers += [
            (f"{HEADER_PREFIX}error", summary(error)[:_MAX_HEADER_ERROR].encode()),
            (f"{HEADER_PREFIX}reason", reason.encode()),
            (f"{HEADER_PREFIX}attempts", str(attempts).encode()),
            (f"{HEADER_PREFIX}group", group.encode()),
            (f"{HEADER_PREFIX}dead_letter_id", str(dead_letter_id).encode()),
            (f"{HEADER_PREFIX}original_topic", record.topic.encode()),
            (f"{HEADER_PREFIX}original_partition", str(record.partition).encode()),
            (f"{HEADER_PREFIX}original_offset", str(record.offset).encode()),
        ]
        try:
            self._producer.produce(
                physical_topic(dead_letter_topic(record.topic)),
                key=record.key.encode() if record.key is not None else None,
                value=value,
                headers=headers,
                on_delivery=lambda error, message: self._on_delivery(dead_letter_id, error),
            )
        except KafkaException as refused:  # by the client itself, before sending
            self._note(dead_letter_id, refused.args[0])
        self._producer.poll(0)

    def _on_delivery(self, dead_letter_id: int, error: KafkaError | None) -> None:
        if error is not None:
            self._note(dead_letter_id, error)

    def _note(self, dead_letter_id: int, error: KafkaError) -> None:
        if error.code() in _REFUSED_FOR_GOOD:
            self._refused[dead_letter_id] = error.str()
        else:
            self._failures.append(error.str())

    def flush(self) -> dict[int, str]:
        remaining = self._producer.flush(self._flush_timeout)
        failures, self._failures = self._failures, []
        refused, self._refused = self._refused, {}
        if remaining or failures:
            problem = failures[0] if failures else f"{remaining} record(s) still in flight"
            raise DeadLetterPublishError(f"dead-letter topic did not confirm the record: {problem}")
        return refused


def note_refused_copies(refused: dict[int, str]) -> None:
    """The dead letters stay (the table is the record of truth); their error says the copy is
    missing from `<topic>.dlq`, and why."""
    for dead_letter_id, why in refused.items():
        log.error("dead letter #%s was not copied to its .dlq topic: %s", dead_letter_id, why)
        DeadLetter.objects.filter(pk=dead_letter_id).update(
            error=Concat(Value(f"not copied to the .dlq topic: {why}\n\n"), F("error"))
        )


# --- Replay and discard ----------------------------------------------------------------------


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
    *, dead_letter_id: int, publisher_factory: PublisherFactory = KafkaDeadLetterPublisher.create
) -> Release:
    """Apply a pending dead letter with the current code, then the records parked behind it.

    Raises ReplayFailed (the dead letter stays pending, with the new error and one more
    attempt) when it fails again, and DeadLetterError when it is not pending.
    """
    with transaction.atomic():
        dead_letter = _lock_pending(dead_letter_id)
        routes = _routes(dead_letter.context)
        failure = _apply(_stored_record(dead_letter), routes, group=dead_letter.consumer_group)
        if failure is not None:
            dead_letter.error = failure[1]
            dead_letter.attempts += 1
            dead_letter.updated_at = timezone.now()
            dead_letter.save(update_fields=["error", "attempts", "updated_at"])
        else:
            _resolve(dead_letter, DeadLetterStatus.REPLAYED)
            release = _release_parked(dead_letter, routes, publisher_factory)
    if failure is not None:
        raise ReplayFailed(f"dead letter #{dead_letter_id} failed again: {summary(failure[1])}")
    log.info("dead letter #%s replayed; %s parked record(s) applied", dead_letter_id, release.applied - 1)
    return release


def discard(
    *, dead_letter_id: int, publisher_factory: PublisherFactory = KafkaDeadLetterPublisher.create
) -> Release:
    """Drop a pending dead letter for good and apply the records parked behind it."""
    with transaction.atomic():
        dead_letter = _lock_pending(dead_letter_id)
        _resolve(dead_letter, DeadLetterStatus.DISCARDED)
        release = _release_parked(dead_letter, _routes(dead_letter.context), publisher_factory)
    log.info("dead letter #%s discarded; %s parked record(s) applied", dead_letter_id, release.applied)
    return release


def _lock_pending(dead_letter_id: int) -> DeadLetter:
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


def _stored_record(row: DeadLetter | ParkedRecord) -> ConsumedRecord:
    return ConsumedRecord.from_stored(
        topic=row.topic,
        partition=row.partition,
        offset=row.offset,
        key=row.key,
        value=row.value,
        headers=row.headers,
    )


def _apply(record: ConsumedRecord, routes: Routes, *, group: str) -> tuple[DeadLetterReason, str] | None:
    """Apply one stored record in a savepoint; returns why it failed, or None."""
    outcome = route(record, routes)
    if isinstance(outcome, Unrouted):
        return None  # the context no longer handles this type: nothing to apply
    if isinstance(outcome, Invalid):
        return DeadLetterReason.INVALID_RECORD, outcome.error
    try:
        with transaction.atomic():
            if inbox.claim(group=group, items=[(record, outcome)]):
                handle(outcome)
    except Exception as error:
        return DeadLetterReason.HANDLER_FAILED, describe_failure(error)
    return None


def _release_parked(dead_letter: DeadLetter, routes: Routes, publisher_factory: PublisherFactory) -> Release:
    parked = list(dead_letter.parked.order_by("partition", "offset"))
    applied = 1 if dead_letter.status == DeadLetterStatus.REPLAYED else 0
    for index, row in enumerate(parked):
        record = _stored_record(row)
        failure = _apply(record, routes, group=dead_letter.consumer_group)
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
