"""The inbox: a consumer group handles each ce_id once, whatever Kafka redelivers.

`claim()` inserts the inbox rows of a whole batch in one statement, inside the transaction
the handlers then run in. A row that already exists (a redelivery, or a duplicate the relay
published twice) is not inserted, so its event is skipped; if a handler fails, the
transaction rolls back and takes the rows with it.
"""

import json
from collections.abc import Sequence

from django.db import connection

from .records import ConsumedRecord, Routed

# The batch travels as one JSON document that json_to_recordset() turns into rows: one round
# trip for the whole batch, and json.dumps (C) encodes it several times faster than psycopg
# builds seven array literals element by element.
_CLAIM = """
    INSERT INTO inbox (consumer_group, event_id, event_type, topic, partition, "offset", key, correlation_id)
    SELECT %s, batch.*
    FROM json_to_recordset(%s::json) AS batch (
        event_id uuid, event_type text, topic text, partition int, "offset" bigint, key text,
        correlation_id text
    )
    ON CONFLICT (event_id, consumer_group) DO NOTHING
    RETURNING event_id::text
"""


def claim(*, group: str, items: Sequence[tuple[ConsumedRecord, Routed]]) -> set[str]:
    """Record the events as handled by `group`; returns the ce_ids that were new."""
    if not items:
        return set()
    rows = [
        {
            "event_id": routed.event_id,
            "event_type": routed.envelope.type,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "key": record.key,
            "correlation_id": routed.envelope.correlation_id,
        }
        for record, routed in items
    ]
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM, [group, json.dumps(rows)])
        return {row[0] for row in cursor.fetchall()}
