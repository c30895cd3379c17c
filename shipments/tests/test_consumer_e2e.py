"""Shipments under the real consumer runner: OrderConfirmed on Kafka, `manage.py consume shipments`."""

import uuid
from decimal import Decimal

import pytest

from backbone.kafka import group_id
from backbone.tests.consumer_probe import consume_until_idle, send_event, start_group_at_end
from orders.events import OrderConfirmed, OrderLine
from outbox.models import OutboxRecord
from shipments.events import ShipmentPrepared
from shipments.models import Shipment

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_shipments_consumer_prepares_one_shipment_per_order(kafka_topics: list[str]) -> None:
    start_group_at_end(group_id("shipments"), ("orders",))
    order_id = uuid.uuid4()
    confirmed = OrderConfirmed(
        order_id=order_id,
        customer_id=7,
        lines=(OrderLine(sku="MUG-1", quantity=2, unit_price=Decimal("9.50")),),
        total=Decimal("19.00"),
    )
    first = send_event(confirmed, flush=False)
    send_event(confirmed)  # delivered again with another ce_id: still one shipment

    consumer = consume_until_idle("shipments")

    assert consumer.returncode == 0, consumer.stderr[-2000:]
    shipment = Shipment.objects.get()
    assert (shipment.order_id, shipment.state) == (order_id, "prepared")
    assert list(shipment.lines.values_list("sku", "quantity")) == [("MUG-1", 2)]
    prepared = OutboxRecord.objects.get(event_type=ShipmentPrepared.type_name)
    assert (prepared.payload["shipment_id"], prepared.causation_id) == (str(shipment.id), first.id)
