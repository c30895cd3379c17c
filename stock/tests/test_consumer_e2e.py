"""Stock under the real consumer runner: OrderRequested/Confirmed/Rejected records on Kafka,
`manage.py consume stock` as a subprocess, the results in PostgreSQL and the outbox."""

import uuid
from decimal import Decimal

import pytest

from backbone.kafka import group_id
from backbone.tests.consumer_probe import consume_until_idle, send_event, start_group_at_end
from orders.events import OrderConfirmed, OrderLine, OrderRejected, OrderRequested
from outbox.models import OutboxRecord
from stock.events import StockReserved
from stock.models import Reservation

from .helpers import add_product, level

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def mugs(quantity: int) -> tuple[OrderLine, ...]:
    return (OrderLine(sku="MUG-1", quantity=quantity, unit_price=Decimal("9.50")),)


def test_the_stock_consumer_reserves_commits_and_releases_effectively_once(kafka_topics: list[str]) -> None:
    start_group_at_end(group_id("stock"), ("orders",))
    add_product("MUG-1", on_hand=5)
    kept, rejected, short = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    requested = send_event(
        OrderRequested(order_id=kept, customer_id=7, lines=mugs(2), total=Decimal("19.00")), flush=False
    )
    # The same record again, as a relay that died after delivery would publish it.
    send_event(
        OrderRequested(order_id=kept, customer_id=7, lines=mugs(2), total=Decimal("19.00")),
        event_id=requested.id,
        correlation_id=requested.correlation_id,
        flush=False,
    )
    send_event(
        OrderRequested(order_id=rejected, customer_id=7, lines=mugs(3), total=Decimal("28.50")), flush=False
    )
    send_event(
        OrderRequested(order_id=short, customer_id=7, lines=mugs(9), total=Decimal("85.50")), flush=False
    )
    send_event(
        OrderConfirmed(order_id=kept, customer_id=7, lines=mugs(2), total=Decimal("19.00")), flush=False
    )
    send_event(OrderRejected(order_id=rejected, reason="payment_declined"), flush=False)
    send_event(OrderRejected(order_id=short, reason="out_of_stock"))

    consumer = consume_until_idle("stock")

    assert consumer.returncode == 0, consumer.stderr[-2000:]
    states = dict(Reservation.objects.values_list("order_id", "state"))
    assert states == {kept: "committed", rejected: "released", short: "failed"}
    stock = level("MUG-1")
    assert (stock.on_hand, stock.reserved) == (3, 0)
    reserved = OutboxRecord.objects.get(event_type=StockReserved.type_name, key=str(kept))
    assert (reserved.correlation_id, reserved.causation_id) == (requested.correlation_id, requested.id)
