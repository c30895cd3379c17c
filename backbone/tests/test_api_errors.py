"""No request makes the API answer 500: hostile input gets a 4xx with one JSON error shape,
`{"detail": "...", "errors": {...}?}`, on the real test database."""

import json
import uuid
from unittest import mock

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from orders.models import Order
from orders.tests.factories import make_user, stock_level
from outbox.models import OutboxRecord
from stock.models import StockLevel
from stock.tests.helpers import add_product

pytestmark = pytest.mark.django_db

ORDERS = "/api/orders/"
ORDER = {"lines": [{"sku": "KB-1", "quantity": 1}], "payment_token": "tok_visa"}


@pytest.fixture
def customer() -> APIClient:
    stock_level("KB-1", available=10)
    client = APIClient()
    client.force_authenticate(make_user("carol"))
    return client


@pytest.fixture
def staff() -> APIClient:
    add_product("MUG-1", on_hand=2)
    client = APIClient()
    client.force_authenticate(make_user("sam", staff=True))
    return client


def error(response, status: int) -> dict:
    """The response is `status` with the one error shape; returns its body."""
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert set(body) <= {"detail", "errors", "shortages", "shipment"}
    return body


# --- Bodies -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [ORDERS, "/api/auth/token/"])
def test_deeply_nested_json_is_400(customer, path) -> None:
    # 5,000 levels fit well inside the size limit and still exhaust the JSON parser's recursion.
    body = "[" * 5000 + "]" * 5000
    response = customer.post(path, body, content_type="application/json")
    assert "nested" in error(response, 400)["detail"]


def test_json_nested_100000_levels_deep_is_refused(customer) -> None:
    body = '{"lines": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert error(customer.post(ORDERS, body, content_type="application/json"), 413)
    assert not Order.objects.exists()


def test_a_body_over_the_limit_is_413_and_places_nothing(customer) -> None:
    body = json.dumps({**ORDER, "padding": "x" * 5_000_000})
    response = customer.post(ORDERS, body, content_type="application/json")
    assert "65536" in error(response, 413)["detail"]
    assert not Order.objects.exists()


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=100)
def test_the_limit_is_a_setting(customer) -> None:
    assert customer.post(ORDERS, ORDER, format="json").status_code == 202
    body = json.dumps({**ORDER, "padding": "x" * 100})
    assert error(customer.post(ORDERS, body, content_type="application/json"), 413)


def test_the_token_endpoint_refuses_big_bodies_too() -> None:
    body = {"username": "x" * 100_000, "password": "y"}
    assert error(APIClient().post("/api/auth/token/", body, format="json"), 413)


# --- NUL characters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"lines": [{"sku": "KB\x00", "quantity": 1}], "payment_token": "tok"},
        {**ORDER, "payment_token": "tok\x00"},
    ],
)
def test_nul_in_a_body_string_is_400(customer, body) -> None:
    assert error(customer.post(ORDERS, body, format="json"), 400)["errors"]
    assert not OutboxRecord.objects.exists()


def test_nul_in_a_path_is_400(staff) -> None:
    response = staff.post("/api/stock/MUG%00-1/receipts/", {"quantity": 1}, format="json")
    assert "NUL" in error(response, 400)["detail"]


@pytest.mark.parametrize("query", ["wait=%00", "x%00=1", "page=1%00"])
def test_nul_in_a_query_is_400(customer, query) -> None:
    assert error(customer.get(f"{ORDERS}?{query}"), 400)
    assert error(customer.get(f"{ORDERS}{uuid.uuid4()}/?{query}"), 400)


@pytest.mark.parametrize("header", ["HTTP_IDEMPOTENCY_KEY", "HTTP_AUTHORIZATION", "HTTP_X_ANYTHING"])
def test_nul_in_a_header_is_400(header) -> None:
    stock_level("KB-1", available=10)
    make_user("carol")
    response = APIClient().post(ORDERS, ORDER, format="json", **{header: "Token a\x00b"})
    assert "NUL" in error(response, 400)["detail"]


def test_nul_in_the_token_endpoint_is_400() -> None:
    body = {"username": "carol\x00", "password": "x"}
    assert error(APIClient().post("/api/auth/token/", body, format="json"), 400)["errors"]


# --- Numbers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("quantity", [2**31, 2**63, 10**30])
def test_a_receipt_beyond_the_stock_range_is_400(staff, quantity) -> None:
    response = staff.post("/api/stock/MUG-1/receipts/", {"quantity": quantity}, format="json")
    assert "quantity" in error(response, 400)["errors"]
    assert StockLevel.objects.get(product_id="MUG-1").on_hand == 2


# A quantity the schema allows that does not fit what is on hand now conflicts with the state:
# 409, like too little stock for an order (a 400 would call valid input invalid).
@pytest.mark.parametrize(("on_hand", "quantity"), [(2**31 - 10, 100), (2, 2**31 - 1)])
def test_a_receipt_that_overflows_on_hand_is_409(staff, on_hand, quantity) -> None:
    StockLevel.objects.filter(product_id="MUG-1").update(on_hand=on_hand)
    response = staff.post("/api/stock/MUG-1/receipts/", {"quantity": quantity}, format="json")
    assert "at most" in error(response, 409)["detail"]
    assert StockLevel.objects.get(product_id="MUG-1").on_hand == on_hand


@pytest.mark.parametrize("wait", ["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e999"])
def test_a_wait_that_is_not_a_finite_number_is_400(customer, wait) -> None:
    order_id = customer.post(ORDERS, ORDER, format="json").json()["id"]
    response = customer.get(f"{ORDERS}{order_id}/", {"wait": wait})
    assert "wait" in error(response, 400)["errors"]


@pytest.mark.parametrize("page", ["0", "-1", "abc", "last", "1.0", "\u0661"])
def test_a_malformed_page_is_400(customer, page) -> None:
    assert error(customer.get(ORDERS, {"page": page}), 400)["errors"] == {
        "page": ["A positive whole number is required."]
    }
    assert error(APIClient().get("/api/products/", {"page": page}), 400)["errors"]


@pytest.mark.parametrize("size", ["0", "-5", "x"])
def test_a_malformed_page_size_is_400(size) -> None:
    assert "page_size" in error(APIClient().get("/api/products/", {"page_size": size}), 400)["errors"]


@pytest.mark.parametrize("page", ["2", "99999999999999999999999999"])
def test_a_page_past_the_last_is_404(customer, page) -> None:
    assert error(customer.get(ORDERS, {"page": page}), 404)
    assert error(APIClient().get("/api/products/", {"page": page}), 404)


def test_a_page_size_above_the_maximum_is_capped() -> None:
    assert APIClient().get("/api/products/", {"page_size": 10**30}).status_code == 200


# --- Headers and paths -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "k" * 256, "k" * 10_000])
def test_a_bad_idempotency_key_is_400(customer, key) -> None:
    response = customer.post(ORDERS, ORDER, format="json", headers={"Idempotency-Key": key})
    assert "Idempotency-Key" in error(response, 400)["errors"]
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    "path",
    [
        "/api/orders/not-a-uuid/",
        "/api/orders/not-a-uuid/events/",
        "/api/shipments/not-a-uuid/dispatch/",
        "/api/nothing-here/",
    ],
)
def test_a_path_that_matches_nothing_under_api_is_a_json_404(customer, path) -> None:
    assert error(customer.get(path), 404)["detail"]


def test_too_many_query_fields_is_a_json_400(customer) -> None:
    response = customer.get(ORDERS + "?" + "&".join(f"f{i}=1" for i in range(1001)))
    assert "DATA_UPLOAD_MAX_NUMBER_FIELDS" in error(response, 400)["detail"]


def test_a_disallowed_host_is_a_json_400_that_names_no_setting(customer) -> None:
    body = error(customer.get(ORDERS, HTTP_HOST="evil.example"), 400)
    assert body == {"detail": "Bad request."}


@pytest.mark.parametrize("length", ["-1", "lots"])
def test_a_malformed_content_length_is_400(customer, length) -> None:
    response = customer.generic("POST", ORDERS, json.dumps(ORDER), "application/json", CONTENT_LENGTH=length)
    assert "Content-Length" in error(response, 400)["detail"]


def test_a_bug_is_a_json_500_under_api(customer) -> None:
    customer.raise_request_exception = False
    with mock.patch("orders.api.selectors.orders_visible_to", side_effect=RuntimeError("bug")):
        response = customer.get(ORDERS)
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error; it has been logged."}


def test_other_paths_keep_djangos_404() -> None:
    response = APIClient().get("/nothing-here/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


# --- One error shape -----------------------------------------------------------------------------------


def test_field_errors_come_with_a_detail_that_names_the_fields(customer) -> None:
    body = error(customer.post(ORDERS, {"lines": []}, format="json"), 400)
    assert set(body["errors"]) == {"lines", "payment_token"}
    assert "lines" in body["detail"]
    assert "payment_token" in body["detail"]


def test_wrong_credentials_are_400_with_the_reason_as_detail() -> None:
    response = APIClient().post("/api/auth/token/", {"username": "x", "password": "y"}, format="json")
    assert error(response, 400)["detail"] == "Unable to log in with provided credentials."


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", ORDERS, 401),
        ("delete", "/api/products/", 405),
        ("post", "/api/stock/MUG-1/receipts/", 401),
    ],
)
def test_framework_errors_have_the_same_shape(method, path, status) -> None:
    assert error(getattr(APIClient(), method)(path), status)


def test_malformed_json_is_400() -> None:
    client = APIClient()
    client.force_authenticate(make_user("dave"))
    assert "JSON" in error(client.post(ORDERS, "{nope", content_type="application/json"), 400)["detail"]
