"""Handlers in a test, run the way the consumer runner runs them."""

import uuid
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone

from backbone.contracts import Event
from backbone.correlation import correlation_scope
from backbone.envelope import Envelope, format_time
from backbone.tracing import span_scope


def envelope_for(
    event: Event,
    *,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    event_id: str | None = None,
    data_version: int | None = None,
) -> Envelope:
    """The envelope the relay would publish `event` in: unless given, a new ce_id, a new story
    and the contract's current version (give an older one to exercise an upcaster)."""
    return Envelope(
        id=event_id or str(uuid.uuid4()),
        type=event.type_name,
        source=f"/{event.context}",
        time=format_time(timezone.now()),
        data_version=data_version or event.contract_version,
        correlation_id=correlation_id or str(uuid.uuid4()),
        causation_id=causation_id,
    )


def deliver(
    handler: Callable[[Any, Envelope], None],
    event: Event,
    envelope: Envelope | None = None,
    *,
    correlation_id: str | None = None,
) -> Envelope:
    """Run a handler as the consumer runner does: in a transaction, in the event's story
    (`correlation_id`'s, or a new one, unless a whole `envelope` is given)."""
    envelope = envelope or envelope_for(event, correlation_id=correlation_id)
    with (
        transaction.atomic(),
        correlation_scope(envelope.correlation_id, causation_id=envelope.id),
        span_scope(f"process {envelope.type}", envelope.traceparent, kind="consumer"),
    ):
        handler(event, envelope)
    return envelope
