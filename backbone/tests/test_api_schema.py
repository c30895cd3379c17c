"""Property-based test of the whole API against its own OpenAPI schema (schemathesis).

Schemathesis reads /api/schema/, generates requests for every operation (valid ones and,
in negative mode, invalid ones) and sends them through the real WSGI application to the
real PostgreSQL test database, as a customer or as staff (tokens). A response fails the test
when it is a 5xx or does not match the schema: an undocumented status, content type,
header or body. Each request is then sent again aimed at real rows (an order, a shipment,
the catalog's skus), so the checks reach the code behind the 404s and unknown skus.
Examples are bounded to keep this well under a minute.
"""

import copy
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import override_settings
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from orders.tests.factories import make_user, place, stock_level
from shipments import services as shipments
from stock.tests.helpers import add_product

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
STAFF_PATHS = ("/api/stock/", "/api/shipments/")
SKUS = ("KB-1", "MS-2", "LE-3")


@dataclass(frozen=True)
class Shop:
    customer_token: str
    staff_token: str
    real_ids: dict[str, str]  # path parameter -> an existing row's id


@pytest.fixture
def keep_connection() -> Iterator[None]:
    """Requests reach Django's WSGI handler directly, which closes the database connection
    after each one, and with it the test's transaction: Django's own test client unhooks
    that for the same reason."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def shop(db, keep_connection) -> Shop:
    customer = make_user("carol")
    staff = make_user("sam", staff=True)
    for sku in SKUS:
        stock_level(sku, available=50)
        add_product(sku, on_hand=50)
    order = place(customer, ("KB-1", 1))
    shipment = shipments.prepare_shipment(order_id=order.id, customer_id=customer.id, lines=[])
    return Shop(
        customer_token=Token.objects.create(user=customer).key,
        staff_token=Token.objects.create(user=staff).key,
        real_ids={"order_id": str(order.id), "id": str(shipment.id), "sku": "KB-1"},
    )


# The schema is read once, through the application itself (no database needed for it).
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
# Long-polls on the real order must not hold the run for ORDER_WAIT_MAX_SECONDS each.
@override_settings(ORDER_WAIT_MAX_SECONDS=0.01)
def test_the_api_answers_as_its_schema_says(case, shop: Shop) -> None:
    staff = case.path.startswith(STAFF_PATHS)
    headers = {"Authorization": f"Token {shop.staff_token if staff else shop.customer_token}"}
    case.call_and_validate(headers=headers, checks=CHECKS)
    if _point_at_real_rows(case, shop):
        case.call_and_validate(headers=headers, checks=CHECKS)


def _point_at_real_rows(case, shop: Shop) -> bool:
    """Aim the generated request at rows that exist (an order, a shipment, skus of the catalog),
    where random ids and skus only meet 404s and unknown-sku errors. True if anything changed."""
    changed = False
    if case.path_parameters:
        case.path_parameters = {name: shop.real_ids.get(name, v) for name, v in case.path_parameters.items()}
        changed = True
    if isinstance(case.body, dict) and isinstance(case.body.get("lines"), list):
        case.body = copy.deepcopy(case.body)
        for line, sku in zip(case.body["lines"], itertools.cycle(SKUS), strict=False):
            if isinstance(line, dict):
                line["sku"] = sku
                changed = True
    return changed
