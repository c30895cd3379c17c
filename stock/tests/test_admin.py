"""The admin shows Stock's rows and offers no way to change them behind the services' back."""

import uuid

import pytest
from django.test import Client

from stock import services
from stock.events import ReservedLine
from stock.models import Product, Reservation, StockLevel

from .helpers import add_product

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_with_rows(admin_client: Client) -> Client:
    """pytest-django's client logged in as a superuser, with a product, a reservation and a receipt."""
    add_product("MUG-1", on_hand=5)
    services.reserve_for_order(order_id=uuid.uuid4(), lines=[ReservedLine(sku="MUG-1", quantity=2)])
    services.receive_stock(sku="MUG-1", quantity=3)
    return admin_client


@pytest.mark.parametrize("model", ["product", "stocklevel", "reservation", "stockreceipt"])
def test_every_admin_list_renders_and_offers_no_add(admin_client_with_rows: Client, model: str) -> None:
    response = admin_client_with_rows.get(f"/admin/stock/{model}/")

    assert response.status_code == 200
    assert admin_client_with_rows.get(f"/admin/stock/{model}/add/").status_code == 403


def test_a_reservation_page_shows_its_lines_read_only(admin_client_with_rows: Client) -> None:
    reservation = Reservation.objects.get()

    response = admin_client_with_rows.get(f"/admin/stock/reservation/{reservation.pk}/change/")

    assert response.status_code == 200
    assert "MUG-1" in response.content.decode()
    assert b'name="state"' not in response.content  # no form field: read-only


def test_a_product_page_cannot_change_the_level(admin_client_with_rows: Client) -> None:
    response = admin_client_with_rows.post("/admin/stock/product/MUG-1/change/", {"name": "Changed"})

    assert response.status_code == 403
    assert Product.objects.get().name == "Product MUG-1"
    assert StockLevel.objects.get().on_hand == 8
