"""Realistic events for the bench: `OrderRequested` of 8-16 lines (0.5-1 KB of JSON), a few
events per order, so there are many aggregates (record keys) as in a real shop."""

import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import psycopg

from backbone.envelope import Headers
from outbox.store import headers_of

OUTBOX_COLUMNS = (
    "event_id",
    "topic",
    "key",
    "event_type",
    "data_version",
    "source",
    "correlation_id",
    "causation_id",
    "occurred_at",
    "payload",
    "traceparent",
)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """The columns emit() writes, plus the record they become on Kafka."""

    event_id: str
    topic: str
    key: str
    event_type: str
    data_version: int
    source: str
    correlation_id: str
    causation_id: str
    occurred_at: datetime
    payload: str
    traceparent: str | None
    tracestate: str | None = None  # none of the bench's events carries a vendor's state

    def as_copy_row(self) -> tuple[object, ...]:
        return tuple(getattr(self, column) for column in OUTBOX_COLUMNS)

    def headers(self) -> Headers:
        """The same headers the relay builds for this row."""
        return headers_of(self)


def order_requested(order_id: uuid.UUID, rng: random.Random) -> str:
    """The JSON of one OrderRequested, built through the real contract."""
    from orders.events import OrderLine, OrderRequested

    lines = tuple(
        OrderLine(
            sku=f"SKU-{rng.randint(1, 5_000):05d}",
            quantity=rng.randint(1, 5),
            unit_price=Decimal(rng.randint(199, 99_999)) / 100,
        )
        for _ in range(rng.randint(8, 16))
    )
    total = sum((line.unit_price * line.quantity for line in lines), Decimal(0))
    event = OrderRequested(order_id=order_id, customer_id=rng.randint(1, 10_000), lines=lines, total=total)
    return event.to_json().decode()


def order_rows(count: int, *, events_per_order: int = 4, seed: int = 7) -> list[OutboxRow]:
    """`count` outbox rows on topic `orders`, `events_per_order` per order id, interleaved."""
    rng = random.Random(seed)
    order_count = max(1, count // events_per_order)
    orders = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(order_count)]
    # One payload per order keeps generation fast; the bytes on the wire are what matter.
    payloads = {order_id: order_requested(order_id, rng) for order_id in orders}
    now = datetime.now(UTC)
    rows = []
    for index in range(count):
        order_id = orders[index % len(orders)]
        rows.append(
            OutboxRow(
                event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                topic="orders",
                key=str(order_id),
                event_type="orders.OrderRequested",
                data_version=1,
                source="/orders",
                correlation_id=str(order_id),
                causation_id="",
                occurred_at=now,
                payload=payloads[order_id],
                # Every event carries one (ce_traceparent), so its cost is in the numbers.
                traceparent=f"00-{rng.getrandbits(128):032x}-{rng.getrandbits(64):016x}-01",
            )
        )
    return rows


def copy_into_outbox(connection: psycopg.Connection, rows: Iterable[OutboxRow]) -> None:
    """COPY the rows into the outbox in the caller's transaction (one NOTIFY at commit)."""
    statement = f"COPY outbox ({', '.join(OUTBOX_COLUMNS)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row.as_copy_row())
