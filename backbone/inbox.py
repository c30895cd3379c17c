"""The inbox: a consumer group handles each ce_id once, whatever Kafka redelivers.

`claim()` inserts the inbox rows of a whole batch in one statement, inside the transaction
the handlers then run in. A row that already exists (a redelivery, or a duplicate the relay
published twice) is not inserted, so its event is skipped; if a handler fails, the
transaction rolls back and takes the rows with it.
"""

from collections.abc import Sequence

from django.db import connection

from .records import ConsumedRecord, Routed

# unnest() turns one array per column into rows: one round trip for the whole batch.
_CLAIM = """
    INSERT INTO inbox (consumer_group, event_id, event_type, topic, partition, "offset", key, correlation_id)
    SELECT %s, batch.*
    FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::int[], %s::bigint[], %s::text[], %s::text[])
        AS batch (event_id, event_type, topic, partition, "offset", key, correlation_id)
    ON CONFLICT (event_id, consumer_group) DO NOTHING
    RETURNING event_id::text
"""


def claim(*, group: str, items: Sequence[tuple[ConsumedRecord, Routed]]) -> set[str]:
    """Record the events as handled by `group`; returns the ce_ids that were new."""
    if not items:
        return set()
    columns: list[list[object]] = [[] for _ in range(7)]
    for record, routed in items:
        row = (
            routed.event_id,
            routed.envelope.type,
            record.topic,
            record.partition,
            record.offset,
            record.key,
            routed.envelope.correlation_id,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM, [group, *columns])
        return {str(row[0]) for row in cursor.fetchall()}
