"""The orders HTTP API through DRF's test client: validation, the pre-check, idempotency,
who sees what, long-polls and the OpenAPI description."""

import json
import logging
import threading
import time
import uuid
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from backbone.correlation import CorrelationIdFilter, correlation_scope
from orders import services
from orders.models import Order, OrderState
from orders.tests.factories import PASSWORD, make_user, place, stock_level
from outbox.models import OutboxRecord

UNKNOWN_ID = uuid.UUID("00000000-0000-4000-8000-000000000404")

pytestmark = pytest.mark.django_db

ORDERS = "/api/orders/"


@pytest.fixture
def customer():
    return make_user("carol")


@pytest.fixture
def client(customer) -> APIClient:
    client = APIClient()
    client.force_authenticate(customer)
    return client


@pytest.fixture
def catalog() -> None:
    stock_level("KB-1", available=10, price="89.00", name="Keyboard")
    stock_level("MS-2", available=3, price="29.50", name="Mouse")


def order_body(*lines: tuple[str, int], token: str = "tok_visa") -> dict:
    return {"lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines], "payment_token": token}


# --- Authentication and catalog -------------------------------------------------------------------


def test_a_customer_gets_a_token_and_uses_it(customer, catalog) -> None:
    anonymous = APIClient()
    response = anonymous.post("/api/auth/token/", {"username": "carol", "password": PASSWORD}, format="json")
    assert response.status_code == 200
    token = response.json()["token"]

    anonymous.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert anonymous.get(ORDERS).status_code == 200


def test_a_wrong_password_gets_no_token(customer) -> None:
    response = APIClient().post("/api/auth/token/", {"username": "carol", "password": "nope"}, format="json")
    assert response.status_code == 400
    assert "token" not in response.json()


def test_orders_need_authentication(catalog) -> None:
    assert APIClient().get(ORDERS).status_code == 401
    assert APIClient().post(ORDERS, order_body(("KB-1", 1)), format="json").status_code == 401


def test_the_catalog_comes_from_orders_view_of_stock(catalog) -> None:
    response = APIClient().get("/api/products/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert body["results"] == [
        {"sku": "KB-1", "name": "Keyboard", "price": "89.00", "available": 10},
        {"sku": "MS-2", "name": "Mouse", "price": "29.50", "available": 3},
    ]


# --- Placing orders -----------------------------------------------------------------------------


def test_placing_an_order_answers_202_with_the_order_and_its_location(client, catalog) -> None:
    response = client.post(ORDERS, order_body(("KB-1", 2), ("MS-2", 1)), format="json")

    assert response.status_code == 202
    body = response.json()
    order = Order.objects.get()
    assert body["id"] == str(order.id)
    assert body["state"] == "REQUESTED"
    assert body["reason"] is None
    assert body["total"] == "207.50"
    assert body["shipment"] is None
    assert body["lines"] == [
        {"sku": "KB-1", "name": "Keyboard", "quantity": 2, "unit_price": "89.00", "line_total": "178.00"},
        {"sku": "MS-2", "name": "Mouse", "quantity": 1, "unit_price": "29.50", "line_total": "29.50"},
    ]
    assert response["Location"] == f"http://testserver/api/orders/{order.id}/"
    # The request's correlation id is the order's story.
    assert order.correlation_id == response["X-Correlation-ID"]
    assert OutboxRecord.objects.get().correlation_id == order.correlation_id


def test_a_clients_correlation_id_is_only_a_trace_in_the_logs(client, catalog) -> None:
    logged = _Capture()
    logged.addFilter(CorrelationIdFilter())
    logging.getLogger("orders").addHandler(logged)
    try:
        response = client.post(ORDERS, order_body(("KB-1", 1)), format="json", HTTP_X_CORRELATION_ID="mine-1")
    finally:
        logging.getLogger("orders").removeHandler(logged)

    order = Order.objects.get()
    assert order.correlation_id not in {"", "mine-1"}
    assert response["X-Correlation-ID"] == order.correlation_id
    [requested] = [record for record in logged.records if "requested" in record.getMessage()]
    assert (requested.correlation_id, requested.client_trace) == (order.correlation_id, " client=mine-1")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize(
    ("body", "field_errors"),
    [
        (order_body(("KB-1", 1), ("NOPE", 1)), {"lines": [{}, {"sku": ["Unknown sku 'NOPE'."]}]}),
        (
            order_body(("KB-1", 0)),
            {"lines": [{"quantity": ["Ensure this value is greater than or equal to 1."]}]},
        ),
        (
            order_body(("KB-1", -3)),
            {"lines": [{"quantity": ["Ensure this value is greater than or equal to 1."]}]},
        ),
        (order_body(), {"lines": {"non_field_errors": ["This list may not be empty."]}}),
        (
            order_body(("KB-1", 1), ("MS-2", 1), ("KB-1", 2)),
            {"lines": ["Each sku may appear on one line only; repeated: KB-1."]},
        ),
        ({"lines": [{"sku": "KB-1", "quantity": 1}]}, {"payment_token": ["This field is required."]}),
        (
            {"lines": [{"sku": "KB-1", "quantity": 1}], "payment_token": ""},
            {"payment_token": ["This field may not be blank."]},
        ),
        ({"payment_token": "tok"}, {"lines": ["This field is required."]}),
        (
            {"lines": [{"quantity": 1}], "payment_token": "tok"},
            {"lines": [{"sku": ["This field is required."]}]},
        ),
        (
            {"lines": "KB-1", "payment_token": "tok"},
            {"lines": {"non_field_errors": ['Expected a list of items but got type "str".']}},
        ),
    ],
)
def test_bad_input_is_400_with_field_errors_and_places_nothing(client, catalog, body, field_errors) -> None:
    response = client.post(ORDERS, body, format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == field_errors
    assert not Order.objects.exists()
    assert not OutboxRecord.objects.exists()


@override_settings(ORDER_MAX_LINES=2)
def test_too_many_lines_is_400(client) -> None:
    for sku in ("A", "B", "C"):
        stock_level(sku, available=5)
    response = client.post(ORDERS, order_body(("A", 1), ("B", 1), ("C", 1)), format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == {"lines": {"non_field_errors": ["An order has at most 2 lines."]}}


def test_too_little_stock_in_the_view_is_409_and_emits_nothing(client, catalog) -> None:
    response = client.post(ORDERS, order_body(("KB-1", 1), ("MS-2", 4)), format="json")

    assert response.status_code == 409
    assert response.json()["shortages"] == [{"sku": "MS-2", "requested": 4, "available": 3}]
    assert "MS-2" in response.json()["detail"]
    assert not Order.objects.exists()
    assert not OutboxRecord.objects.exists()


def test_an_idempotency_key_makes_a_retry_return_the_same_order(client, catalog) -> None:
    headers = {"Idempotency-Key": "checkout-42"}
    first = client.post(ORDERS, order_body(("KB-1", 1)), format="json", headers=headers)
    retry = client.post(ORDERS, order_body(("KB-1", 1)), format="json", headers=headers)

    assert first.status_code == retry.status_code == 202
    assert retry.json()["id"] == first.json()["id"]
    assert retry["Location"] == first["Location"]
    assert retry["Idempotent-Replayed"] == "true"
    assert not first.has_header("Idempotent-Replayed")
    assert Order.objects.count() == 1
    assert OutboxRecord.objects.count() == 1


def test_an_idempotency_key_reused_with_another_body_is_422(client, catalog) -> None:
    headers = {"Idempotency-Key": "checkout-42"}
    client.post(ORDERS, order_body(("KB-1", 1)), format="json", headers=headers)
    response = client.post(ORDERS, order_body(("KB-1", 2)), format="json", headers=headers)

    assert response.status_code == 422
    assert "checkout-42" in response.json()["detail"]
    assert Order.objects.count() == 1


def test_an_overlong_idempotency_key_is_400(client, catalog) -> None:
    response = client.post(
        ORDERS, order_body(("KB-1", 1)), format="json", headers={"Idempotency-Key": "k" * 256}
    )
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["errors"]


# --- Reading orders: who sees what ------------------------------------------------------------------


def test_customers_list_only_their_own_orders_and_staff_list_all(client, customer, catalog) -> None:
    mine = place(customer, ("KB-1", 1))
    theirs = place(make_user("dave"), ("KB-1", 1))

    listed = client.get(ORDERS).json()
    assert [order["id"] for order in listed["results"]] == [str(mine.id)]
    assert listed["count"] == 1

    staff = APIClient()
    staff.force_authenticate(make_user("sam", staff=True))
    assert {order["id"] for order in staff.get(ORDERS).json()["results"]} == {str(mine.id), str(theirs.id)}


def test_another_customers_order_is_404_and_staff_see_it(client, catalog) -> None:
    theirs = place(make_user("dave"), ("KB-1", 1))

    assert client.get(f"{ORDERS}{theirs.id}/").status_code == 404
    assert client.get(f"{ORDERS}{theirs.id}/?wait=5").status_code == 404
    assert client.get(f"{ORDERS}{theirs.id}/events/").status_code == 404
    assert client.get(f"{ORDERS}{uuid.uuid4()}/").status_code == 404

    staff = APIClient()
    staff.force_authenticate(make_user("sam", staff=True))
    assert staff.get(f"{ORDERS}{theirs.id}/").json()["id"] == str(theirs.id)


# A fixed unknown id: parameters must be the same in every pytest-xdist worker's collection.
@pytest.mark.parametrize("path", ["/api/stock/KB-1/receipts/", f"/api/shipments/{UNKNOWN_ID}/dispatch/"])
def test_staff_endpoints_are_403_for_customers(client, catalog, path) -> None:
    assert client.post(path, {"quantity": 5}, format="json").status_code == 403


def test_the_events_endpoint_tells_the_orders_story(client, customer, catalog) -> None:
    order_id = client.post(ORDERS, order_body(("KB-1", 1)), format="json").json()["id"]
    order = Order.objects.get(id=order_id)

    story = client.get(f"{ORDERS}{order_id}/events/").json()

    assert story["order_id"] == order_id
    assert story["correlation_id"] == order.correlation_id
    [requested] = story["events"]
    assert requested["type"] == "orders.OrderRequested"
    assert requested["topic"] == "orders"
    assert requested["partition"] is None  # no relay runs here: not published yet
    assert requested["handled_by"] == []
    assert requested["key"] == order_id
    assert requested["causation_id"] is None
    assert requested["data"]["order_id"] == order_id


def test_an_orders_story_holds_only_its_own_events_even_with_a_shared_correlation_id(
    client, customer, catalog
) -> None:
    # Orders placed before stories got server ids could share a client's correlation id.
    with correlation_scope("shared-by-two-customers"):
        mine = place(customer, ("KB-1", 1))
        theirs = place(make_user("mallory"), ("MS-2", 1))
    mine_requested = OutboxRecord.objects.get(key=str(mine.id))
    caused_by_mine = _stock_level_row(correlation_id="shared-by-two-customers", cause=mine_requested)
    _stock_level_row(
        correlation_id="shared-by-two-customers", cause=OutboxRecord.objects.get(key=str(theirs.id))
    )

    story = client.get(f"{ORDERS}{mine.id}/events/").json()

    assert [event["id"] for event in story["events"]] == [
        str(mine_requested.event_id),
        str(caused_by_mine.event_id),
    ]
    assert str(theirs.id) not in json.dumps(story)


def _stock_level_row(*, correlation_id: str, cause: OutboxRecord) -> OutboxRecord:
    """A StockLevelChanged in the outbox as Stock writes it: keyed by sku, caused by an order's event."""
    return OutboxRecord.objects.create(
        event_id=uuid.uuid4(),
        topic="stock.levels",
        key="KB-1",
        event_type="stock.StockLevelChanged",
        data_version=1,
        source="/stock",
        correlation_id=correlation_id,
        causation_id=str(cause.event_id),
        occurred_at=timezone.now(),
        payload={"sku": "KB-1", "available": 9},
    )


# --- Long-polls -----------------------------------------------------------------------------------


@pytest.mark.parametrize("wait", ["-1", "soon"])
def test_a_bad_wait_is_400(client, customer, catalog, wait) -> None:
    order = place(customer, ("KB-1", 1))
    response = client.get(f"{ORDERS}{order.id}/", {"wait": wait})
    assert response.status_code == 400
    assert "wait" in response.json()["errors"]


def test_a_final_order_is_answered_at_once(client, customer, catalog) -> None:
    order = place(customer, ("KB-1", 1))
    Order.objects.filter(id=order.id).update(state=OrderState.REJECTED, reason="out_of_stock")

    started = time.monotonic()
    body = client.get(f"{ORDERS}{order.id}/", {"wait": 30}).json()

    assert time.monotonic() - started < 10
    assert (body["state"], body["reason"]) == ("REJECTED", "out_of_stock")


@override_settings(ORDER_WAIT_MAX_SECONDS=0.5)
def test_the_wait_is_capped_by_the_server(client, customer, catalog) -> None:
    order = place(customer, ("KB-1", 1))

    started = time.monotonic()
    body = client.get(f"{ORDERS}{order.id}/", {"wait": 600}).json()

    elapsed = time.monotonic() - started
    assert body["state"] == "REQUESTED"
    assert 0.5 <= elapsed < 10


@pytest.mark.django_db(transaction=True)
def test_a_long_poll_is_woken_by_the_state_change() -> None:
    customer = make_user("carol")
    stock_level("KB-1", available=10)
    order = place(customer, ("KB-1", 1))
    client = APIClient()
    client.force_authenticate(customer)

    def settle_later() -> None:
        try:
            time.sleep(0.3)
            services.validate_order(order_id=order.id)
            time.sleep(0.3)
            services.confirm_order(order_id=order.id)
        finally:
            connection.close()

    settler = threading.Thread(target=settle_later)
    started = time.monotonic()
    with mock.patch("orders.tasks.send_notification_email.delay"):  # no worker here
        settler.start()
        body = client.get(f"{ORDERS}{order.id}/", {"wait": 25}).json()
        elapsed = time.monotonic() - started
        settler.join()

    assert body["state"] == "CONFIRMED"
    assert elapsed < 20  # woken by the change, well before the 25 s timeout


# --- OpenAPI --------------------------------------------------------------------------------------


def test_the_openapi_schema_describes_the_orders_api() -> None:
    response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for path in (
        "/api/auth/token/",
        "/api/products/",
        "/api/orders/",
        "/api/orders/{order_id}/",
        "/api/orders/{order_id}/events/",
    ):
        assert path in paths, path

    place_order = paths["/api/orders/"]["post"]
    assert {"202", "400", "409", "422"} <= set(place_order["responses"])
    assert place_order["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/PlaceOrder")
    assert {"name": "Idempotency-Key", "in": "header"}.items() <= place_order["parameters"][0].items()
    detail_parameters = {
        parameter["name"]: parameter for parameter in paths["/api/orders/{order_id}/"]["get"]["parameters"]
    }
    assert detail_parameters["wait"]["in"] == "query"
    assert "404" in paths["/api/orders/{order_id}/"]["get"]["responses"]
    assert "count" in schema["components"]["schemas"]["PaginatedOrderList"]["properties"]
    assert "count" in schema["components"]["schemas"]["PaginatedProductList"]["properties"]


def test_the_whole_openapi_schema_generates_without_warnings(tmp_path) -> None:
    # Component names are global: two contexts' "Shipment" serializers would silently collide.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert "/api/orders/{order_id}/events/:" in (tmp_path / "schema.yaml").read_text()
