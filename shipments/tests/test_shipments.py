"""Shipments: prepared once per confirmed order, dispatched once, by staff or by the periodic task."""

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from backbone import testing, tracing
from backbone.envelope import Envelope
from backbone.subscriptions import subscriptions
from config.celery import app
from orders.events import OrderConfirmed, OrderLine
from outbox.models import OutboxRecord
from outbox.testing import emitted
from shipments import handlers, services
from shipments.events import ShipmentDispatched, ShipmentPrepared
from shipments.models import Shipment
from shipments.tasks import dispatch_due_shipments

pytestmark = pytest.mark.django_db


def confirmed(order_id: uuid.UUID | None = None) -> OrderConfirmed:
    return OrderConfirmed(
        order_id=order_id or uuid.uuid4(),
        customer_id=7,
        lines=(
            OrderLine(sku="TEE-2", quantity=1, unit_price=Decimal("15.00")),
            OrderLine(sku="MUG-1", quantity=2, unit_price=Decimal("9.50")),
        ),
        total=Decimal("34.00"),
    )


def deliver(event: OrderConfirmed) -> Envelope:
    return testing.deliver(handlers.on_order_confirmed, event)


def prepared_shipment(*, age: timedelta = timedelta(0)) -> Shipment:
    event = confirmed()
    shipment = services.prepare_shipment(
        order_id=event.order_id, customer_id=event.customer_id, lines=event.lines
    )
    Shipment.objects.filter(pk=shipment.pk).update(prepared_at=timezone.now() - age)
    return shipment


def client_for(*, staff: bool) -> APIClient:
    user = get_user_model().objects.create_user(username="staff" if staff else "customer", is_staff=staff)
    client = APIClient()
    client.force_authenticate(user)
    return client


# --- prepare ------------------------------------------------------------------------------------


def test_a_confirmed_order_gets_one_shipment_with_its_lines() -> None:
    event = confirmed()

    envelope = deliver(event)
    deliver(event)  # redelivered: nothing new

    shipment = Shipment.objects.get()
    assert (shipment.order_id, shipment.customer_id, shipment.state) == (event.order_id, 7, "prepared")
    assert list(shipment.lines.values_list("sku", "quantity")) == [("MUG-1", 2), ("TEE-2", 1)]
    assert emitted(ShipmentPrepared) == [ShipmentPrepared(order_id=event.order_id, shipment_id=shipment.id)]
    assert OutboxRecord.objects.get().causation_id == envelope.id


def test_routing_table_is_what_the_consumer_runner_sees() -> None:
    registered = subscriptions.for_context("shipments")

    assert {type_name: [sub.handler for sub in subs] for type_name, subs in registered.items()} == {
        event_type.type_name: [handler] for event_type, handler in handlers.ROUTES.items()
    }
    assert handlers.REBUILDABLE_VIEWS == []


def test_preparing_joins_the_batch_transaction_without_savepoints() -> None:
    event = confirmed()

    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        handlers.on_order_confirmed(event, testing.envelope_for(event))
        handlers.on_order_confirmed(event, testing.envelope_for(event))

    assert [query["sql"] for query in queries.captured_queries if "SAVEPOINT" in query["sql"]] == []
    assert Shipment.objects.count() == 1


# --- dispatch through the staff API -------------------------------------------------------------


def test_staff_dispatch_a_shipment() -> None:
    shipment = prepared_shipment()

    response = client_for(staff=True).post(f"/api/shipments/{shipment.id}/dispatch/", {}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["state"], body["carrier"]) == (
        str(shipment.id),
        "dispatched",
        settings.SHIPMENT_CARRIER,
    )
    assert body["tracking_number"].startswith("TRK")
    assert body["lines"] == [{"sku": "MUG-1", "quantity": 2}, {"sku": "TEE-2", "quantity": 1}]
    [dispatched] = emitted(ShipmentDispatched)
    assert (dispatched.shipment_id, dispatched.order_id) == (shipment.id, shipment.order_id)
    assert dispatched.tracking_number == body["tracking_number"]
    assert Shipment.objects.get().dispatched_at is not None


def test_staff_may_name_the_carrier() -> None:
    shipment = prepared_shipment()

    response = client_for(staff=True).post(
        f"/api/shipments/{shipment.id}/dispatch/", {"carrier": "Bike Courier"}, format="json"
    )

    assert response.status_code == 200
    assert emitted(ShipmentDispatched)[0].carrier == "Bike Courier"


def test_dispatching_twice_is_409_and_keeps_the_first_tracking_number() -> None:
    shipment = prepared_shipment()
    client = client_for(staff=True)
    first = client.post(f"/api/shipments/{shipment.id}/dispatch/", {}, format="json")

    second = client.post(f"/api/shipments/{shipment.id}/dispatch/", {}, format="json")

    assert second.status_code == 409
    assert "already dispatched" in second.json()["detail"]
    assert second.json()["shipment"]["tracking_number"] == first.json()["tracking_number"]
    assert len(emitted(ShipmentDispatched)) == 1


def test_customers_may_not_dispatch() -> None:
    shipment = prepared_shipment()

    response = client_for(staff=False).post(f"/api/shipments/{shipment.id}/dispatch/", {}, format="json")

    assert response.status_code == 403
    assert Shipment.objects.get().state == "prepared"
    assert emitted(ShipmentDispatched) == []


# A fixed unknown id: parameters must be the same in every pytest-xdist worker's collection.
@pytest.mark.parametrize("shipment_id", ["00000000-0000-4000-8000-000000000404", "not-a-uuid"])
def test_an_unknown_shipment_is_404(shipment_id: str) -> None:
    prepared_shipment()

    response = client_for(staff=True).post(f"/api/shipments/{shipment_id}/dispatch/", {}, format="json")

    assert response.status_code == 404
    assert emitted(ShipmentDispatched) == []


def test_a_bad_carrier_is_a_field_error() -> None:
    shipment = prepared_shipment()

    response = client_for(staff=True).post(
        f"/api/shipments/{shipment.id}/dispatch/", {"carrier": "x" * 101}, format="json"
    )

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["carrier"]
    assert Shipment.objects.get().state == "prepared"


def test_a_dispatch_continues_the_orders_story() -> None:
    envelope = deliver(confirmed())
    shipment = Shipment.objects.get()
    prepared = OutboxRecord.objects.get(event_type=ShipmentPrepared.type_name)

    # Outside any correlation scope, as the periodic task runs it.
    services.dispatch_shipment(shipment_id=shipment.id)

    dispatched = OutboxRecord.objects.get(event_type=ShipmentDispatched.type_name)
    assert dispatched.correlation_id == envelope.correlation_id == prepared.correlation_id
    assert dispatched.causation_id == str(prepared.event_id)
    # ...and its trace: a span under the preparation's.
    assert prepared.traceparent is not None
    assert dispatched.traceparent is not None
    assert tracing.trace_id_of(dispatched.traceparent) == tracing.trace_id_of(prepared.traceparent)
    assert dispatched.traceparent != prepared.traceparent


# --- dispatch by the periodic task --------------------------------------------------------------


@override_settings(SHIPMENT_AUTO_DISPATCH_SECONDS=30)
def test_the_periodic_task_dispatches_only_shipments_waiting_long_enough() -> None:
    due = prepared_shipment(age=timedelta(seconds=31))
    also_due = prepared_shipment(age=timedelta(hours=2))
    fresh = prepared_shipment(age=timedelta(seconds=5))
    staff_was_quicker = prepared_shipment(age=timedelta(minutes=5))
    services.dispatch_shipment(shipment_id=staff_was_quicker.id)

    assert dispatch_due_shipments() == 2
    assert dispatch_due_shipments() == 0

    states = dict(Shipment.objects.values_list("id", "state"))
    assert states == {
        due.id: "dispatched",
        also_due.id: "dispatched",
        fresh.id: "prepared",
        staff_was_quicker.id: "dispatched",
    }
    assert {e.shipment_id for e in emitted(ShipmentDispatched)} == {due.id, also_due.id, staff_was_quicker.id}


def test_the_periodic_task_is_scheduled_in_celery_beat() -> None:
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    assert "shipments.tasks.dispatch_due_shipments" in scheduled
    assert "shipments.tasks.dispatch_due_shipments" in app.tasks
