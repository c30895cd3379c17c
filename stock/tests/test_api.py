"""POST /api/stock/{sku}/receipts/: staff book goods in; everyone else is turned away."""

import pytest
from django.contrib.auth import get_user_model
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from outbox.models import OutboxRecord
from outbox.testing import emitted
from stock.events import StockLevelChanged
from stock.models import StockReceipt

from .helpers import add_product, forget_events, level

pytestmark = pytest.mark.django_db


@pytest.fixture
def mug() -> None:
    add_product("MUG-1", on_hand=2)
    forget_events()


def client_for(*, staff: bool) -> APIClient:
    user = get_user_model().objects.create_user(username="staff" if staff else "customer", is_staff=staff)
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.mark.usefixtures("mug")
def test_staff_books_a_receipt_and_gets_the_new_level() -> None:
    response = client_for(staff=True).post("/api/stock/MUG-1/receipts/", {"quantity": 5}, format="json")

    assert response.status_code == 201
    assert response.json() == {
        "sku": "MUG-1",
        "name": "Product MUG-1",
        "price": "9.50",
        "on_hand": 7,
        "reserved": 0,
        "available": 7,
        "version": 2,
    }
    assert level("MUG-1").on_hand == 7
    assert StockReceipt.objects.get().received_by.username == "staff"
    assert [e.on_hand for e in emitted(StockLevelChanged)] == [7]


@pytest.mark.usefixtures("mug")
@pytest.mark.parametrize(
    "body", [{"quantity": 0}, {"quantity": -3}, {"quantity": "many"}, {}, {"quantity": None}]
)
def test_a_bad_quantity_is_a_field_error_and_changes_nothing(body: dict[str, object]) -> None:
    response = client_for(staff=True).post("/api/stock/MUG-1/receipts/", body, format="json")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["quantity"]
    assert level("MUG-1").on_hand == 2
    assert not OutboxRecord.objects.exists()


@pytest.mark.usefixtures("mug")
def test_an_unknown_sku_is_404() -> None:
    response = client_for(staff=True).post("/api/stock/NOPE/receipts/", {"quantity": 5}, format="json")

    assert response.status_code == 404
    assert not StockReceipt.objects.exists()


@pytest.mark.usefixtures("mug")
def test_customers_may_not_book_receipts() -> None:
    response = client_for(staff=False).post("/api/stock/MUG-1/receipts/", {"quantity": 5}, format="json")

    assert response.status_code == 403
    assert level("MUG-1").on_hand == 2


@pytest.mark.usefixtures("mug")
def test_anonymous_callers_must_authenticate() -> None:
    response = APIClient().post("/api/stock/MUG-1/receipts/", {"quantity": 5}, format="json")

    assert response.status_code == 401
    assert level("MUG-1").on_hand == 2


def test_the_openapi_schema_describes_the_receipt() -> None:
    schema = SchemaGenerator().get_schema(request=None, public=True)

    operation = schema["paths"]["/api/stock/{sku}/receipts/"]["post"]
    request_schema = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[
        1
    ]
    assert schema["components"]["schemas"][request_schema]["properties"]["quantity"]["minimum"] == 1
    assert {"201", "400", "403", "404"} <= set(operation["responses"])
    assert "available" in schema["components"]["schemas"]["StockLevel"]["properties"]
