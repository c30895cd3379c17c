"""A bench-only consumer: context `bench` keeps a one-row-per-order view of `OrderRequested`.

Loaded by `manage.py consume bench --handlers bench.consumer_handlers`; the view lives in a
table the bench creates with raw SQL (no app, no migration), so the shop never sees it.

The runner uses the batch handler `record_orders` (one upsert per batch, as a shop view fed
by `@subscribe_batch` does). `record_order` is the same view update one event at a time; it is
not subscribed, the bench times it alone to show what a per-event handler costs.
"""

from collections.abc import Sequence
from uuid import UUID

from django.db import connection

from backbone.envelope import Envelope
from backbone.subscriptions import subscribe_batch
from orders.events import OrderRequested

CREATE_VIEW = """
    CREATE TABLE IF NOT EXISTS bench_order_view (
        order_id uuid PRIMARY KEY,
        customer_id integer NOT NULL,
        line_count integer NOT NULL,
        total numeric(12, 2) NOT NULL,
        last_event_id uuid NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
    )
"""

_ON_CONFLICT = """
    ON CONFLICT (order_id) DO UPDATE SET
        customer_id = EXCLUDED.customer_id,
        line_count = EXCLUDED.line_count,
        total = EXCLUDED.total,
        last_event_id = EXCLUDED.last_event_id,
        updated_at = now()
"""

# A view update as the contexts write theirs one event at a time: an upsert keyed by the aggregate.
_UPSERT = f"""
    INSERT INTO bench_order_view (order_id, customer_id, line_count, total, last_event_id)
    VALUES (%s, %s, %s, %s, %s)
    {_ON_CONFLICT}
"""

# The same for a whole batch: one array per column, one statement.
_UPSERT_ALL = f"""
    INSERT INTO bench_order_view (order_id, customer_id, line_count, total, last_event_id)
    SELECT * FROM unnest(%s::uuid[], %s::integer[], %s::integer[], %s::numeric[], %s::uuid[])
    {_ON_CONFLICT}
"""


def record_order(event: OrderRequested, envelope: Envelope) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            _UPSERT, [event.order_id, event.customer_id, len(event.lines), event.total, envelope.id]
        )


@subscribe_batch(OrderRequested, context="bench")
def record_orders(items: Sequence[tuple[OrderRequested, Envelope]]) -> None:
    # ON CONFLICT cannot touch a row twice in one statement: the last event of each order wins,
    # as it would one at a time (one order's events are in offset order here).
    latest: dict[UUID, tuple[OrderRequested, Envelope]] = {
        event.order_id: (event, envelope) for event, envelope in items
    }
    rows = latest.values()
    with connection.cursor() as cursor:
        cursor.execute(
            _UPSERT_ALL,
            [
                [event.order_id for event, _ in rows],
                [event.customer_id for event, _ in rows],
                [len(event.lines) for event, _ in rows],
                [event.total for event, _ in rows],
                [envelope.id for _, envelope in rows],
            ],
        )
