"""A bench-only consumer: context `bench` keeps a one-row-per-order view of `OrderRequested`.

Loaded by `manage.py consume bench --handlers bench.consumer_handlers`; the view lives in a
table the bench creates with raw SQL (no app, no migration), so the shop never sees it.
"""

from django.db import connection

from backbone.envelope import Envelope
from backbone.subscriptions import subscribe
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

# A view update as the contexts write theirs: one upsert per event, keyed by the aggregate.
_UPSERT = """
    INSERT INTO bench_order_view (order_id, customer_id, line_count, total, last_event_id)
    VALUES (%s, %s, %s, %s, %s)
    ON CONFLICT (order_id) DO UPDATE SET
        customer_id = EXCLUDED.customer_id,
        line_count = EXCLUDED.line_count,
        total = EXCLUDED.total,
        last_event_id = EXCLUDED.last_event_id,
        updated_at = now()
"""


@subscribe(OrderRequested, context="bench")
def record_order(event: OrderRequested, envelope: Envelope) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            _UPSERT, [event.order_id, event.customer_id, len(event.lines), event.total, envelope.id]
        )
