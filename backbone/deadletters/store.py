"""Writing dead letters and the records parked behind them, in the consumer's transaction.

A redelivery of a record that already is a pending dead letter writes nothing (the insert
reports None); a resolved one is opened again (the record was read again, in a rebuild, and
failed again). Hostile keys and headers are clipped to their columns; the whole record stays
in `headers` and `value`. A dead letter whose `.dlq` copy Kafka refused for good keeps its
row (the table is the record of truth) and says so in its error.
"""

import json
import logging
from datetime import datetime

from django.db import connection
from django.db.models import F, Value
from django.db.models.functions import Concat

from ..models import DeadLetter, DeadLetterReason, DeadLetterStatus
from ..records import MAX_ID_LENGTH, MAX_KEY_LENGTH, ConsumedRecord, encode_headers

log = logging.getLogger(__name__)

_MAX_TYPE_LENGTH = 150

# A pending dead letter for the same record (a redelivery) is left as it is; a resolved one is
# opened again: the record was read again (a rebuild) and failed again.
_WRITE = """
    INSERT INTO dead_letter (consumer_group, context, topic, partition, "offset", record_id, key, headers,
                             value, event_id, event_type, correlation_id, reason, error, attempts, status,
                             retry_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (consumer_group, topic, partition, "offset", record_id) DO UPDATE
        SET reason = EXCLUDED.reason, error = EXCLUDED.error, attempts = EXCLUDED.attempts,
            status = EXCLUDED.status, retry_at = EXCLUDED.retry_at, updated_at = now(), resolved_at = NULL
        WHERE dead_letter.status NOT IN ('pending', 'retrying')
    RETURNING id
"""

_PARK = """
    INSERT INTO parked_record
        (dead_letter_id, consumer_group, topic, partition, "offset", record_id, key, headers, value)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)
    ON CONFLICT (consumer_group, topic, partition, "offset", record_id) DO NOTHING
"""


def write_dead_letter(
    *,
    group: str,
    context: str,
    record: ConsumedRecord,
    reason: DeadLetterReason,
    error: str,
    attempts: int,
    retry_at: datetime | None = None,
) -> int | None:
    """Store the record as a pending dead letter, or with `retry_at` as one waiting for its next
    scheduled retry; None when it already is one (a redelivery)."""
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
                DeadLetterStatus.PENDING if retry_at is None else DeadLetterStatus.RETRYING,
                retry_at,
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


def note_refused_copies(refused: dict[int, str]) -> None:
    """The dead letters stay (the table is the record of truth); their error says the copy is
    missing from `<topic>.dlq`, and why."""
    for dead_letter_id, why in refused.items():
        log.error("dead letter #%s was not copied to its .dlq topic: %s", dead_letter_id, why)
        DeadLetter.objects.filter(pk=dead_letter_id).update(
            error=Concat(Value(f"not copied to the .dlq topic: {why}\n\n"), F("error"))
        )
