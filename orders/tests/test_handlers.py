"""The orders handlers, called the way the consumer runner calls them: rows, emitted events,
causation links, and the state machine ignoring what does not fit."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from unittest import mock

import pytest
from django.db import transaction
from django.test import TestCase

from backbone.subscriptions import subscriptions
from backbone.testing import deliver, envelope_for
from orders import handlers
from orders.events import OrderConfirmed, OrderLine, OrderRejected, OrderValidated
from orders.models import Notification, NotificationKind, Order, OrderState, ShipmentStatus, StockLevelView
from orders.tests.factories import make_user, outbox_events, place, stock_level
from outbox.testing import emitted
from payments.events import PaymentFailed, PaymentProcessed
from shipments.events import ShipmentDispatched, ShipmentPrepared
from stock.events import ReservedLine, Shortage, StockLevelChanged, StockReservationFailed, StockReserved

pytestmark = pytest.mark.django_db


@pytest.fixture
def order() -> Order:
    stock_level("KB-1", available=10, price="89.00")
    return place(make_user("carol"), ("KB-1", 2), token="tok_visa")


def reserved(order: Order) -> StockReserved:
    return StockReserved(order_id=order.id, lines=(ReservedLine(sku="KB-1", quantity=2),))


def paid(order: Order) -> PaymentProcessed:
    return PaymentProcessed(order_id=order.id, payment_id=uuid.uuid4(), amount=order.total)


def declined(order: Order) -> PaymentFailed:
    return PaymentFailed(order_id=order.id, payment_id=uuid.uuid4(), amount=order.total, reason="declined")


def prepared(order: Order, shipment_id: uuid.UUID) -> ShipmentPrepared:
    return ShipmentPrepared(order_id=order.id, shipment_id=shipment_id)


def dispatched(order: Order, shipment_id: uuid.UUID) -> ShipmentDispatched:
    return ShipmentDispatched(
        order_id=order.id,
        shipment_id=shipment_id,
        carrier="Parcel Co",
        tracking_number="PC123",
        dispatched_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
    )


def state_of(order: Order) -> tuple[str, str]:
    order.refresh_from_db()
    return order.state, order.reason


def test_stock_reserved_validates_and_asks_for_payment(order) -> None:
    envelope = deliver(handlers.on_stock_reserved, reserved(order), correlation_id=order.correlation_id)

    assert state_of(order) == (OrderState.VALIDATED, "")
    [_requested, validated] = outbox_events(order)
    assert validated.event_type == "orders.OrderValidated"
    assert validated.correlation_id == order.correlation_id
    assert validated.causation_id == envelope.id
    assert emitted(OrderValidated) == [
        OrderValidated(
            order_id=order.id,
            customer_id=order.customer_id,
            total=Decimal("178.00"),
            payment_token="tok_visa",
        )
    ]


def test_a_redelivered_event_changes_nothing(order) -> None:
    deliver(handlers.on_stock_reserved, reserved(order), correlation_id=order.correlation_id)
    deliver(handlers.on_stock_reserved, reserved(order), correlation_id=order.correlation_id)

    assert state_of(order) == (OrderState.VALIDATED, "")
    assert len(outbox_events(order, "orders.OrderValidated")) == 1


def test_reservation_failure_rejects_for_stock(order) -> None:
    event = StockReservationFailed(
        order_id=order.id, shortages=(Shortage(sku="KB-1", requested=2, available=1),)
    )
    deliver(handlers.on_stock_reservation_failed, event, correlation_id=order.correlation_id)

    assert state_of(order) == (OrderState.REJECTED, "out_of_stock")
    assert emitted(OrderRejected) == [OrderRejected(order_id=order.id, reason="out_of_stock")]


@pytest.mark.parametrize(
    ("handler", "event_for"),
    [
        (handlers.on_stock_reserved, reserved),
        (
            handlers.on_stock_reservation_failed,
            lambda order: StockReservationFailed(order_id=order.id, shortages=()),
        ),
    ],
)
def test_orders_forgets_the_payment_token_once_it_is_handed_over_or_not_needed(
    order, handler, event_for
) -> None:
    deliver(handler, event_for(order), correlation_id=order.correlation_id)

    order.refresh_from_db()
    assert order.payment_token == ""


def test_payment_confirms_and_schedules_one_confirmation_email(order) -> None:
    deliver(handlers.on_stock_reserved, reserved(order), correlation_id=order.correlation_id)
    with (
        mock.patch("orders.tasks.send_notification_email.delay") as enqueue,
        TestCase.captureOnCommitCallbacks(execute=True),
    ):
        deliver(handlers.on_payment_processed, paid(order), correlation_id=order.correlation_id)

    assert state_of(order) == (OrderState.CONFIRMED, "")
    [confirmed] = emitted(OrderConfirmed)
    assert confirmed.lines == (OrderLine(sku="KB-1", quantity=2, unit_price=Decimal("89.00")),)
    assert confirmed.total == Decimal("178.00")
    notification = Notification.objects.get(order=order)
    assert (notification.kind, notification.status) == (NotificationKind.CONFIRMATION, "pending")
    enqueue.assert_called_once_with(notification.id)


def test_declined_payment_rejects(order) -> None:
    deliver(handlers.on_stock_reserved, reserved(order), correlation_id=order.correlation_id)
    deliver(handlers.on_payment_failed, declined(order), correlation_id=order.correlation_id)

    assert state_of(order) == (OrderState.REJECTED, "payment_declined")
    assert [rejected.reason for rejected in emitted(OrderRejected)] == ["payment_declined"]
    assert not Notification.objects.exists()


@pytest.mark.parametrize(
    ("handler", "event_for"),
    [
        (handlers.on_payment_processed, paid),  # payment before the reservation
        (handlers.on_payment_failed, declined),
    ],
)
def test_events_for_an_order_in_the_wrong_state_are_ignored(order, handler, event_for) -> None:
    deliver(handler, event_for(order), correlation_id=order.correlation_id)

    assert state_of(order) == (OrderState.REQUESTED, "")
    assert [record.event_type for record in outbox_events(order)] == ["orders.OrderRequested"]


def test_final_states_are_final(order) -> None:
    deliver(handlers.on_stock_reserved, reserved(order), correlation_id=order.correlation_id)
    deliver(handlers.on_payment_failed, declined(order), correlation_id=order.correlation_id)
    deliver(handlers.on_payment_processed, paid(order), correlation_id=order.correlation_id)
    late_failure = StockReservationFailed(order_id=order.id, shortages=())
    deliver(handlers.on_stock_reservation_failed, late_failure, correlation_id=order.correlation_id)

    assert state_of(order) == (OrderState.REJECTED, "payment_declined")
    assert len(outbox_events(order)) == 3  # requested, validated, rejected


def test_events_for_unknown_orders_are_ignored() -> None:
    ghost = uuid.uuid4()
    deliver(handlers.on_stock_reserved, StockReserved(order_id=ghost, lines=()), correlation_id="c")
    assert not Order.objects.exists()


def test_shipment_status_follows_shipments_events(order) -> None:
    deliver(handlers.on_stock_reserved, reserved(order), correlation_id=order.correlation_id)
    deliver(handlers.on_payment_processed, paid(order), correlation_id=order.correlation_id)
    shipment_id = uuid.uuid4()

    deliver_prepared(prepared(order, shipment_id))
    order.refresh_from_db()
    assert (order.shipment_status, order.shipment_id) == (ShipmentStatus.PREPARED, shipment_id)

    deliver(
        handlers.on_shipment_dispatched, dispatched(order, shipment_id), correlation_id=order.correlation_id
    )
    deliver(
        handlers.on_shipment_dispatched, dispatched(order, shipment_id), correlation_id=order.correlation_id
    )
    # A late ShipmentPrepared never walks a dispatch back.
    deliver_prepared(prepared(order, shipment_id))

    order.refresh_from_db()
    assert order.shipment_status == ShipmentStatus.DISPATCHED
    assert (order.carrier, order.tracking_number) == ("Parcel Co", "PC123")
    assert sorted(Notification.objects.filter(order=order).values_list("kind", flat=True)) == [
        "confirmation",
        "dispatch",
    ]
    # Shipments' events are recorded, not answered: Orders emits nothing for them.
    assert [r.event_type for r in outbox_events(order)][-1] == "orders.OrderConfirmed"


def test_shipment_events_for_unconfirmed_orders_are_ignored(order) -> None:
    deliver_prepared(prepared(order, uuid.uuid4()))
    order.refresh_from_db()
    assert order.shipment_status == ShipmentStatus.NONE


def deliver_prepared(*events: ShipmentPrepared) -> None:
    """Run the batch handler the way the consumer runner does: one transaction, one call."""
    with transaction.atomic():
        handlers.on_shipment_prepared([(event, envelope_for(event, correlation_id="c")) for event in events])


def confirmed(order: Order) -> Order:
    deliver(handlers.on_stock_reserved, reserved(order), correlation_id=order.correlation_id)
    deliver(handlers.on_payment_processed, paid(order), correlation_id=order.correlation_id)
    return order


def test_one_batch_of_prepared_shipments_moves_each_confirmed_order_as_one_at_a_time_would() -> None:
    customer = make_user("dana")
    stock_level("KB-1", available=10)
    first, second, dispatched_one = (confirmed(place(customer, ("KB-1", 1))) for _ in range(3))
    unconfirmed, ghost = place(customer, ("KB-1", 1)), uuid.uuid4()
    earlier, later, dispatched_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    deliver(handlers.on_shipment_dispatched, dispatched(dispatched_one, dispatched_id))

    deliver_prepared(
        prepared(first, earlier),
        prepared(second, uuid.uuid4()),
        prepared(first, later),  # the last of an order's events wins
        prepared(unconfirmed, uuid.uuid4()),
        prepared(dispatched_one, uuid.uuid4()),
        ShipmentPrepared(order_id=ghost, shipment_id=uuid.uuid4()),
    )

    states = {o.id: (o.shipment_status, o.shipment_id) for o in Order.objects.all()}
    assert states[first.id] == (ShipmentStatus.PREPARED, later)
    assert states[second.id][0] == ShipmentStatus.PREPARED
    assert states[dispatched_one.id] == (ShipmentStatus.DISPATCHED, dispatched_id)  # never walked back
    assert states[unconfirmed.id] == (ShipmentStatus.NONE, None)
    assert not Order.objects.filter(id=ghost).exists()


def level(version: int, available: int, price: str = "9.90") -> StockLevelChanged:
    return StockLevelChanged(
        sku="CB-4",
        name="Cable",
        price=Decimal(price),
        on_hand=available + 1,
        reserved=1,
        available=available,
        version=version,
    )


def deliver_levels(*events: StockLevelChanged) -> None:
    """Run the batch handler the way the consumer runner does: one transaction, one call."""
    with transaction.atomic():
        handlers.on_stock_level_changed(
            [(event, envelope_for(event, correlation_id="c")) for event in events]
        )


def test_stock_level_view_applies_only_newer_versions() -> None:
    deliver_levels(level(1, 10))
    deliver_levels(level(3, 7, price="11.00"))
    deliver_levels(level(2, 9))  # late and older
    deliver_levels(level(3, 7, price="11.00"))  # duplicate

    row = StockLevelView.objects.get(sku="CB-4")
    assert (row.available, row.version, row.price, row.name) == (7, 3, Decimal("11.00"), "Cable")


def test_stock_level_view_takes_the_newest_of_one_batch() -> None:
    other = level(1, 4).model_copy(update={"sku": "MS-2", "name": "Mouse"})
    deliver_levels(level(1, 10), level(3, 7, price="11.00"), other, level(2, 9), level(3, 7, price="11.00"))

    levels = {row.sku: (row.available, row.version, row.price) for row in StockLevelView.objects.all()}
    assert levels == {"CB-4": (7, 3, Decimal("11.00")), "MS-2": (4, 1, Decimal("9.90"))}


def test_the_stock_level_view_is_rebuildable() -> None:
    assert [StockLevelView] == handlers.REBUILDABLE_VIEWS


def test_routing_tables_are_what_the_consumer_runner_sees() -> None:
    registered = subscriptions.for_context("orders")

    assert {
        type_name: [(sub.handler, sub.batch) for sub in subs] for type_name, subs in registered.items()
    } == {
        **{event_type.type_name: [(handler, False)] for event_type, handler in handlers.ROUTES.items()},
        **{event_type.type_name: [(handler, True)] for event_type, handler in handlers.BATCH_ROUTES.items()},
    }
