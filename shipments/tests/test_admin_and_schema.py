"""The shipments admin (read-only, with a dispatch action) and the dispatch endpoint's schema."""

import uuid

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from outbox.models import OutboxRecord
from shipments import services
from shipments.events import ShipmentDispatched
from shipments.models import Shipment

pytestmark = pytest.mark.django_db


def prepare() -> Shipment:
    return services.prepare_shipment(order_id=uuid.uuid4(), customer_id=7, lines=[])


def test_shipments_are_listed_and_cannot_be_added(admin_client: Client) -> None:
    shipment = prepare()

    listing = admin_client.get("/admin/shipments/shipment/")

    assert listing.status_code == 200
    assert str(shipment.order_id) in listing.content.decode()
    assert admin_client.get(f"/admin/shipments/shipment/{shipment.pk}/change/").status_code == 200
    assert admin_client.get("/admin/shipments/shipment/add/").status_code == 403


def test_the_dispatch_action_dispatches_the_prepared_ones_through_the_service(admin_client: Client) -> None:
    waiting, already = prepare(), prepare()
    services.dispatch_shipment(shipment_id=already.pk)

    response = admin_client.post(
        "/admin/shipments/shipment/",
        {"action": "dispatch", "_selected_action": [str(waiting.pk), str(already.pk)]},
        follow=True,
    )

    assert response.status_code == 200
    assert "1 shipment(s) dispatched" in response.content.decode()
    assert set(Shipment.objects.values_list("state", flat=True)) == {"dispatched"}
    assert OutboxRecord.objects.filter(event_type=ShipmentDispatched.type_name).count() == 2


def test_the_openapi_schema_describes_the_dispatch() -> None:
    schema = SchemaGenerator().get_schema(request=None, public=True)

    operation = schema["paths"]["/api/shipments/{id}/dispatch/"]["post"]
    assert {"200", "403", "404", "409"} <= set(operation["responses"])
    assert operation["parameters"][0]["schema"]["format"] == "uuid"
