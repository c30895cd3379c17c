"""What a customer may read of an order's story: an allow-list of fields per event type, and the
payment token in no event but the one Payments charges from."""

import pytest
from rest_framework.test import APIClient

from backbone.contracts import registry
from backbone.testing import deliver
from orders import handlers
from orders.story_fields import CUSTOMER_VISIBLE_FIELDS
from orders.tests.factories import make_user, place, stock_level
from stock.events import ReservedLine, StockReserved

# Importing every context's handlers registers every contract.
for _context in ("orders", "stock", "payments", "shipments"):
    __import__(f"{_context}.handlers")

pytestmark = pytest.mark.django_db


def test_the_story_shows_only_allowed_fields_and_never_the_payment_token() -> None:
    stock_level("KB-1", available=10, price="89.00")
    carol = make_user("carol")
    order = place(carol, ("KB-1", 2), token="tok_carols_card_4242")
    reserved = StockReserved(order_id=order.id, lines=(ReservedLine(sku="KB-1", quantity=2),))
    deliver(handlers.on_stock_reserved, reserved, correlation_id=order.correlation_id)  # emits OrderValidated
    client = APIClient()
    client.force_authenticate(carol)

    response = client.get(f"/api/orders/{order.id}/events/")

    assert "tok_carols_card_4242" not in response.content.decode()
    data = {event["type"]: event["data"] for event in response.json()["events"]}
    assert data["orders.OrderValidated"] == {"order_id": str(order.id), "total": "178.00"}
    assert set(data["orders.OrderRequested"]) == {"order_id", "lines", "total"}  # no customer id


def shop_contracts() -> dict[str, type]:
    """The contracts of the shop's contexts (test modules may register probes of their own)."""
    return {c.type_name: c for c in registry.all() if c.__module__ == f"{c.context}.events"}


def test_every_contract_has_an_allow_list_of_its_own_fields() -> None:
    contracts = shop_contracts()
    assert set(CUSTOMER_VISIBLE_FIELDS) == set(contracts)
    for type_name, fields in CUSTOMER_VISIBLE_FIELDS.items():
        assert fields <= set(contracts[type_name].model_fields), type_name


def test_the_payment_token_travels_only_to_payments() -> None:
    carrying = {
        name for name, contract in shop_contracts().items() if "payment_token" in contract.model_fields
    }
    assert carrying == {"orders.OrderValidated"}
    assert not any("payment_token" in fields for fields in CUSTOMER_VISIBLE_FIELDS.values())
