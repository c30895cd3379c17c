"""How many statements Orders' state transitions send to PostgreSQL: every confirmed order
makes two of them (validate, confirm), each in the Orders consumer's batch transaction."""

import re
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders import services
from orders.events import OrderValidated
from orders.models import Order, OrderState
from orders.tests.factories import make_user, place, stock_level
from outbox.testing import emitted

pytestmark = pytest.mark.django_db


def order_statements(captured: CaptureQueriesContext) -> list[str]:
    """The statements on the order's own row (not its lines or notifications)."""
    return [
        query["sql"] for query in captured.captured_queries if re.search(r"\borders_order\b", query["sql"])
    ]


@pytest.fixture
def order() -> Order:
    stock_level("KB-1", available=5)
    return place(make_user("alice"), ("KB-1", 1), token="tok_visa")


def test_validating_moves_the_order_and_hands_on_its_token_in_one_statement(order: Order) -> None:
    with CaptureQueriesContext(connection) as captured:
        services.validate_order(order_id=order.id)

    assert len(order_statements(captured)) == 1
    assert [event.payment_token for event in emitted(OrderValidated)] == ["tok_visa"]
    order.refresh_from_db()
    assert (order.state, order.payment_token) == (OrderState.VALIDATED, "")


def test_confirming_moves_the_order_in_one_statement(order: Order) -> None:
    services.validate_order(order_id=order.id)

    with CaptureQueriesContext(connection) as captured:
        services.confirm_order(order_id=order.id)

    assert len(order_statements(captured)) == 1
    order.refresh_from_db()
    assert order.state == OrderState.CONFIRMED


def test_a_move_from_the_wrong_state_changes_nothing(order: Order) -> None:
    assert services.confirm_order(order_id=order.id) is None

    order.refresh_from_db()
    assert (order.state, order.payment_token) == (OrderState.REQUESTED, "tok_visa")


@pytest.mark.django_db(transaction=True)
def test_placing_an_order_over_http_is_one_commit() -> None:
    """Authentication, the catalog check, the stock check and the order's rows share the
    request's one transaction: each read outside it was a commit of its own (docs/shop.md)."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from backbone.testing.commits import counting

    stock_level("SKU-C", available=5)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=make_user('counted')).key}")
    body = {"lines": [{"sku": "SKU-C", "quantity": 1}], "payment_token": "tok_visa"}
    with counting() as commits:
        response = client.post("/api/orders/", body, format="json")
    assert response.status_code == 202, response.content
    assert len(commits) == 1, commits
    with counting() as commits:
        refused = client.post(
            "/api/orders/", {**body, "lines": [{"sku": "SKU-C", "quantity": 50}]}, format="json"
        )
    assert refused.status_code == 409
    assert len(commits) <= 1, commits


@pytest.mark.django_db(transaction=True)
def test_reading_an_order_over_http_is_one_commit() -> None:
    """The token and the order's first read share one transaction (`orders.api._FirstRead.initial`)."""
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from backbone.testing.commits import counting

    customer = make_user("reader")
    stock_level("SKU-R", available=5)
    order = place(customer, ("SKU-R", 1))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=customer).key}")
    with counting() as commits:
        response = client.get(f"/api/orders/{order.id}/", {"wait": 0})
    assert response.status_code == 200, response.content
    assert len(commits) == 1, commits
    with counting() as commits:
        assert client.get(f"/api/orders/{uuid.uuid4()}/").status_code == 404
        assert client.get(f"/api/orders/{uuid.uuid4()}/", {"wait": "x"}).status_code == 400  # before 404
    assert not commits, commits  # an error's transaction (token, wait, read) is rolled back


def test_reading_an_order_without_waiting_starts_no_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sync handler (the web's direct lane, the test client) runs the read in the request's
    thread: an async view there would start a thread and an event loop for every request."""
    import threading

    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    customer = make_user("threadless")
    stock_level("SKU-T", available=5)
    order = place(customer, ("SKU-T", 1))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=customer).key}")
    started: list[str] = []
    start = threading.Thread.start

    def counted_start(thread: threading.Thread) -> None:
        started.append(thread.name)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", counted_start)
    response = client.get(f"/api/orders/{order.id}/")
    assert response.status_code == 200, response.content
    assert response.json()["id"] == str(order.id)
    assert not started, started
