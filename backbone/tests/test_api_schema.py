"""Property-based test of the whole API against its own OpenAPI schema (schemathesis).

Schemathesis reads /api/schema/, generates requests for every operation (valid ones and, in
negative mode, invalid ones) and sends them through the real WSGI application to the real
PostgreSQL test database, as a customer or as staff (tokens). A response fails the test when it
is a 5xx or does not match the schema (an undocumented status, content type, header or body),
when a request the schema calls invalid is accepted (negative_data_rejection), or when one it
calls valid is refused (positive_data_acceptance). The second check needs requests aimed at
real rows (an order, a shipment, the catalog's skus, a user's password), so each request is sent
again aimed at them, and it is checked there. Examples are bounded to keep this under a minute.
"""

import copy
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import jsonschema
import pytest
import schemathesis
from django.conf import settings as django_settings
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import override_settings
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.config import PositiveDataAcceptanceConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from orders.tests.factories import PASSWORD, make_user, place, stock_level
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
# As many skus as an order may have lines, so that every valid order can name known ones.
SKUS = tuple(f"SKU-{n}" for n in range(django_settings.ORDER_MAX_LINES))


@dataclass(frozen=True)
class Shop:
    customer_token: str
    staff_token: str
    customer: str  # the customer's username (their password is PASSWORD)
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
    order = place(customer, (SKUS[0], 1))
    shipment = shipments.prepare_shipment(order_id=order.id, customer_id=customer.id, lines=[])
    return Shop(
        customer_token=Token.objects.create(user=customer).key,
        staff_token=Token.objects.create(user=staff).key,
        customer=customer.get_username(),
        real_ids={"order_id": str(order.id), "id": str(shipment.id), "sku": SKUS[0]},
    )


# The schema is read once, through the application itself (no database needed for it).
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
# Valid data may still meet the state of things: 404, 409 (too little stock, too much on hand,
# dispatched already) and 422 (an Idempotency-Key reused with another body).
schema.config.checks.positive_data_acceptance = PositiveDataAcceptanceConfig.from_dict(
    {"expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429"]}
)


@schema.parametrize()
@settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
# Long-polls on the real order must not hold the run for ORDER_WAIT_MAX_SECONDS each.
@override_settings(ORDER_WAIT_MAX_SECONDS=0.01)
def test_the_api_answers_as_its_schema_says(case, shop: Shop) -> None:
    staff = case.path.startswith(STAFF_PATHS)
    headers = {"Authorization": f"Token {shop.staff_token if staff else shop.customer_token}"}
    response = case.call_and_validate(headers=headers, checks=[*CHECKS, negative_data_rejection])
    # Invalid data aimed at real rows may have become valid: only valid data is checked there.
    if _point_at_real_rows(case, shop):
        case.call_and_validate(headers=headers, checks=[*CHECKS, positive_data_acceptance])
    else:
        case.validate_response(response, checks=[positive_data_acceptance], headers=headers)


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
    if isinstance(case.body, dict) and {"username", "password"} <= set(case.body):
        case.body = {**case.body, "username": shop.customer, "password": PASSWORD}
        changed = True
    return changed


def test_the_schema_states_the_limits_the_api_enforces() -> None:
    spec = APIClient().get("/api/schema/", {"format": "json"}).json()
    components = spec["components"]["schemas"]
    paths = spec["paths"]
    place_order = paths["/api/orders/"]["post"]

    assert components["PlaceOrder"]["properties"]["lines"]["minItems"] == 1
    assert components["PlaceOrder"]["properties"]["payment_token"]["minLength"] == 1
    assert components["LineInput"]["properties"]["sku"]["minLength"] == 1
    assert components["Dispatch"]["properties"]["carrier"]["minLength"] == 1
    assert components["Receipt"]["properties"]["quantity"]["maximum"] == 2**31 - 1
    [key] = [p for p in place_order["parameters"] if p["name"] == "Idempotency-Key"]
    assert (key["schema"]["minLength"], key["schema"]["maxLength"]) == (1, 255)
    [wait] = [p for p in paths["/api/orders/{order_id}/"]["get"]["parameters"] if p["name"] == "wait"]
    assert wait["schema"]["minimum"] == 0
    for name in ("page", "page_size"):
        [page] = [p for p in paths["/api/products/"]["get"]["parameters"] if p["name"] == name]
        assert page["schema"] == {"type": "integer", "minimum": 1}


def test_the_schema_documents_every_error_in_the_one_shape() -> None:
    spec = APIClient().get("/api/schema/", {"format": "json"}).json()
    paths = spec["paths"]

    assert {"200", "400", "413"} <= set(paths["/api/auth/token/"]["post"]["responses"])
    assert "404" in paths["/api/products/"]["get"]["responses"]  # a page past the last
    assert "404" in paths["/api/orders/"]["get"]["responses"]
    assert paths["/api/orders/"]["post"]["responses"]["202"]["headers"]["Location"]["required"]
    for operations in paths.values():
        for operation in operations.values():
            for status, response in operation["responses"].items():
                if status.startswith("4"):
                    schema = response["content"]["application/json"]["schema"]
                    assert "$ref" in schema, (operation["operationId"], status)
    assert spec["components"]["schemas"]["Error"]["required"] == ["detail"]


# --- Where schemathesis found the schema and the API disagreeing, one request each ----------------


def _spec() -> dict:
    return APIClient().get("/api/schema/", {"format": "json"}).json()


def _schema_allows(spec: dict, component: str, body: object) -> bool:
    """Whether the schema calls `body` a valid request of the component. Read-only properties are
    left out, as OpenAPI says for requests (the token's answer is in the same component)."""
    schema = copy.deepcopy(spec["components"]["schemas"][component])
    read_only = {name for name, p in schema.get("properties", {}).items() if p.get("readOnly")}
    schema["properties"] = {n: p for n, p in schema.get("properties", {}).items() if n not in read_only}
    schema["required"] = [name for name in schema.get("required", []) if name not in read_only]
    root = {**schema, "components": spec["components"]}
    return jsonschema.Draft4Validator(root).is_valid(body)


@pytest.fixture
def api(shop: Shop) -> dict[str, APIClient]:
    clients = {"customer": APIClient(), "staff": APIClient(), "anonymous": APIClient()}
    clients["customer"].credentials(HTTP_AUTHORIZATION=f"Token {shop.customer_token}")
    clients["staff"].credentials(HTTP_AUTHORIZATION=f"Token {shop.staff_token}")
    return clients


ORDER = {"lines": [{"sku": SKUS[1], "quantity": 1}], "payment_token": "tok_visa"}
PRICED_LINE = {"sku": SKUS[1], "quantity": 1, "price": 1}
LOGIN = {"username": "carol", "password": PASSWORD}


@pytest.mark.parametrize(
    ("who", "path", "component", "body", "unknown"),
    [
        ("customer", "/api/orders/", "PlaceOrder", {**ORDER, "errors": {}}, "errors"),
        ("customer", "/api/orders/", "PlaceOrder", {**ORDER, "lines": [PRICED_LINE]}, "lines"),
        ("anonymous", "/api/auth/token/", "Login", {**LOGIN, "remember_me": True}, "remember_me"),
        ("staff", "/api/shipments/{id}/dispatch/", "Dispatch", {"carrier_name": "Post"}, "carrier_name"),
        ("staff", "/api/stock/{sku}/receipts/", "Receipt", {"quantity": 1, "note": "late"}, "note"),
    ],
)  # fmt: skip
def test_a_key_the_body_does_not_have_is_refused_and_the_schema_says_so(
    api: dict[str, APIClient], shop: Shop, who: str, path: str, component: str, body: dict, unknown: str
) -> None:
    response = api[who].post(path.format(**shop.real_ids), body, format="json")

    assert response.status_code == 400, response.content
    assert unknown in response.json()["errors"]
    assert _schema_allows(_spec(), component, body) is False
    assert _spec()["components"]["schemas"][component]["additionalProperties"] is False


@pytest.mark.parametrize(
    ("who", "path", "component", "body", "field"),
    [
        ("anonymous", "/api/auth/token/", "Login", {**LOGIN, "username": ""}, "username"),
        ("anonymous", "/api/auth/token/", "Login", {**LOGIN, "username": "   "}, "username"),
        ("anonymous", "/api/auth/token/", "Login", {**LOGIN, "password": ""}, "password"),
        ("customer", "/api/orders/", "PlaceOrder", {**ORDER, "payment_token": "tok\x00"}, "payment_token"),
        ("customer", "/api/orders/", "PlaceOrder", {**ORDER, "payment_token": " "}, "payment_token"),
        ("staff", "/api/shipments/{id}/dispatch/", "Dispatch", {"carrier": "\t"}, "carrier"),
    ],
)  # fmt: skip
def test_a_string_the_api_refuses_is_invalid_in_the_schema(
    api: dict[str, APIClient], shop: Shop, who: str, path: str, component: str, body: dict, field: str
) -> None:
    response = api[who].post(path.format(**shop.real_ids), body, format="json")

    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert _schema_allows(_spec(), component, body) is False
    assert _schema_allows(_spec(), component, {**body, field: "x"}) is True  # only the string was wrong


def test_bodies_are_json_only_in_the_api_and_in_the_schema(api: dict[str, APIClient], shop: Shop) -> None:
    receipts = f"/api/stock/{shop.real_ids['sku']}/receipts/"
    multipart = api["staff"].post(receipts, {"quantity": 1}, format="multipart")
    form = api["staff"].post(receipts, "quantity=1", content_type="application/x-www-form-urlencoded")
    token = api["anonymous"].post("/api/auth/token/", LOGIN, format="multipart")

    assert (multipart.status_code, form.status_code, token.status_code) == (415, 415, 415)
    assert api["staff"].post(receipts, {"quantity": 1}, format="json").status_code == 201
    for operations in _spec()["paths"].values():
        for operation in operations.values():
            if "requestBody" in operation:
                media_types = list(operation["requestBody"]["content"])
                assert media_types == ["application/json"], operation["operationId"]


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/products/?page=", "page"),
        ("/api/products/?page_size=", "page_size"),
        ("/api/orders/?page=", "page"),
        ("/api/orders/{order_id}/?wait=", "wait"),
    ],
)
def test_an_empty_number_in_the_query_is_a_field_error(
    api: dict[str, APIClient], shop: Shop, path: str, name: str
) -> None:
    response = api["customer"].get(path.format(**shop.real_ids))

    assert response.status_code == 400, response.content
    assert name in response.json()["errors"]


def test_a_receipt_past_what_a_level_counts_is_a_documented_409(api: dict[str, APIClient], shop) -> None:
    receipts = f"/api/stock/{shop.real_ids['sku']}/receipts/"

    response = api["staff"].post(receipts, {"quantity": 2**31 - 1}, format="json")

    assert response.status_code == 409, response.content
    assert "at most" in response.json()["detail"]
    assert "409" in _spec()["paths"]["/api/stock/{sku}/receipts/"]["post"]["responses"]
