"""`emit()`: record an event in the outbox, inside the transaction of the change it describes."""

import uuid

from django.db import connection
from django.utils import timezone

from backbone.conf import backbone_settings
from backbone.contracts import Event
from backbone.correlation import current_causation_id, current_correlation_id, new_id
from backbone.envelope import Envelope, format_time
from backbone.topics import acting_context, ensure_writer
from backbone.tracing import child_of, current_traceparent, current_tracestate


class OutsideTransactionError(RuntimeError):
    """emit() was called outside `transaction.atomic()`: the event could outlive a rollback."""


class EventTooLarge(ValueError):
    """The event's JSON is over EVENT_MAX_BYTES: consumers would dead-letter it unread."""


_INSERT = """
    INSERT INTO outbox (event_id, topic, key, event_type, data_version, source,
                        correlation_id, causation_id, occurred_at, payload, traceparent, tracestate)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::json, %s, %s)
"""


def emit(event: Event) -> Envelope:
    """Add `event` to the outbox; it is published once (and only if) the transaction commits.

    Raises OutsideTransactionError outside `transaction.atomic()`, TopicOwnershipError
    when the event's app is not the single writer of its topic (or, in a consumer, when the
    event is another app's than the one whose handlers run), and EventTooLarge
    when its JSON is over EVENT_MAX_BYTES (caught here, it rolls back with the change instead
    of reaching every consumer's dead letters).
    """
    if not connection.in_atomic_block:
        raise OutsideTransactionError(
            f"emit({type(event).__name__}) must run inside transaction.atomic(), "
            "so the event commits or rolls back with the change it describes"
        )
    ensure_writer(event.topic, acting_context() or event.context)
    payload = event.to_json()
    if len(payload) > backbone_settings.EVENT_MAX_BYTES:
        raise EventTooLarge(
            f"{event.type_name} is {len(payload)} bytes of JSON, over EVENT_MAX_BYTES "
            f"({backbone_settings.EVENT_MAX_BYTES}): carry a reference to large data instead"
        )
    now = timezone.now()
    envelope = Envelope(
        id=str(uuid.uuid4()),
        type=event.type_name,
        source=f"/{event.context}",
        time=format_time(now),
        # ce_dataversion is the contract's version, not a field of the event (StockLevelChanged
        # carries a `version` of its own: the sku's).
        data_version=event.contract_version,
        correlation_id=current_correlation_id() or new_id(),
        causation_id=current_causation_id(),
        # The emitting request's or handler's span, which consumers continue (ce_traceparent);
        # outside both (a Celery task, a command), the root of a new trace.
        traceparent=current_traceparent() or child_of(None),
        # The vendors' tracestate of that trace, passed on unchanged (none for a new trace).
        tracestate=current_tracestate() if current_traceparent() else None,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT,
            [
                envelope.id,
                event.topic,
                event.key,
                envelope.type,
                envelope.data_version,
                envelope.source,
                envelope.correlation_id,
                envelope.causation_id or "",
                now,
                payload.decode(),
                envelope.traceparent,
                envelope.tracestate,
            ],
        )
    return envelope
