"""What a test's transaction emitted through the outbox, as events rather than JSON rows.

A service test asserts the events a service emitted, as cosmicpython's unit tests do::

    assert emitted(StockReserved) == [StockReserved(order_id=order_id, lines=(...,))]

It lives with the outbox rather than in `backbone.testing`: backbone does not depend on outbox.
"""

import json
from typing import TypeVar

from backbone.contracts import Event, registry
from outbox.models import OutboxRecord

E = TypeVar("E", bound=Event)


def emitted(event_type: type[E]) -> list[E]:
    """The `event_type` events in the outbox, oldest first, decoded the way a consumer decodes
    them: the round trip through JSON and the contract registry is part of what is checked."""
    events: list[E] = []
    for row in OutboxRecord.objects.filter(event_type=event_type.type_name).order_by("id"):
        event = registry.decode(row.event_type, row.data_version, json.dumps(row.payload).encode())
        assert isinstance(event, event_type), f"{row.event_type} decoded to {type(event).__name__}"
        events.append(event)
    return events
