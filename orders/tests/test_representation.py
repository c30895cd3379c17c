"""An order's representation (`order_representation`) is what `OrderSerializer` gives, in every
state the API shows: made once, the serializer must not carry one order into the next; and the
fixed reads of the API (`order_visible_to`, `lines_of`) load what the ORM loads."""

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from orders.models import Order, OrderState, RejectionReason, ShipmentStatus
from orders.selectors import lines_of, order_visible_to
from orders.serializers import OrderSerializer, OrderShipmentSerializer, order_representation
from orders.tests.factories import make_user, place, stock_level

pytestmark = pytest.mark.django_db


def fetched(order: Order) -> Order:
    return Order.objects.prefetch_related("lines").get(id=order.id)


def represented(order: Order) -> dict[str, Any]:
    return order_representation(order, list(order.lines.all()))


def test_the_representation_is_the_serializers_in_every_state() -> None:
    stock_level("REP-A", available=9, price="12.50")
    stock_level("REP-B", available=9, price="0.99")
    customer = make_user("represented")
    requested = place(customer, ("REP-A", 2), ("REP-B", 3))
    rejected = place(customer, ("REP-A", 1))
    Order.objects.filter(id=rejected.id).update(
        state=OrderState.REJECTED, reason=RejectionReason.PAYMENT_DECLINED
    )
    shipped, prepared = place(customer, ("REP-B", 1)), place(customer, ("REP-A", 1))
    Order.objects.filter(id=shipped.id).update(
        state=OrderState.CONFIRMED,
        shipment_status=ShipmentStatus.DISPATCHED,
        shipment_id=uuid.uuid4(),
        carrier="Parcel Co",
        tracking_number="PC-1",
        dispatched_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    Order.objects.filter(id=prepared.id).update(
        state=OrderState.CONFIRMED, shipment_status=ShipmentStatus.PREPARED, shipment_id=uuid.uuid4()
    )

    # In turns, so that a field left over from one order would show in the next.
    for order in [requested, shipped, rejected, prepared, requested, shipped]:
        order = fetched(order)
        representation = represented(order)
        assert representation == OrderSerializer(order).data
        # A serializer of its own: OrderSerializer shares the representation's shipment part.
        shipment = (
            None if order.shipment_status == ShipmentStatus.NONE else OrderShipmentSerializer(order).data
        )
        assert representation["shipment"] == shipment
    assert represented(fetched(shipped))["shipment"]["tracking_number"] == "PC-1"
    assert represented(fetched(rejected))["reason"] == RejectionReason.PAYMENT_DECLINED
    assert represented(fetched(requested))["shipment"] is None
    assert [line["line_total"] for line in represented(fetched(requested))["lines"]] == [
        "25.00",
        "2.97",
    ]


def test_the_fixed_reads_load_what_the_orm_loads_for_whom_may_see_it() -> None:
    stock_level("REP-C", available=9, price="3.10")
    stock_level("REP-D", available=9, price="4.20")
    owner, other, staff = make_user("owner"), make_user("other"), make_user("clerk", staff=True)
    order = place(owner, ("REP-D", 2), ("REP-C", 1))
    Order.objects.filter(id=order.id).update(
        state=OrderState.CONFIRMED, shipment_status=ShipmentStatus.PREPARED, shipment_id=uuid.uuid4()
    )
    expected = OrderSerializer(fetched(order)).data

    for reader in (owner, staff):
        read = order_visible_to(reader, order.id)
        assert read is not None
        assert order_representation(read, lines_of(read.id)) == expected
    assert order_visible_to(other, order.id) is None
    assert order_visible_to(owner, uuid.uuid4()) is None
    assert [line.sku for line in lines_of(order.id)] == ["REP-D", "REP-C"]  # as placed
