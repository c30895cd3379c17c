"""Placing orders: the pre-check against Orders' view, the atomic write with its event, and
idempotency keys."""

from decimal import Decimal

import pytest

from backbone.correlation import correlation_scope
from backbone.testing import run_together
from orders import services
from orders.events import OrderLine, OrderRequested
from orders.models import Order, OrderState
from orders.tests.factories import make_user, outbox_events, place, stock_level
from outbox.models import OutboxRecord
from outbox.testing import emitted

pytestmark = pytest.mark.django_db


@pytest.fixture
def customer():
    return make_user("carol")


def test_placing_an_order_writes_it_and_its_event_in_one_story(customer) -> None:
    stock_level("KB-1", available=5, price="89.00", name="Keyboard")
    stock_level("MS-2", available=5, price="29.50", name="Mouse")

    with correlation_scope("story-1"):
        order = place(customer, ("KB-1", 2), ("MS-2", 1))

    order.refresh_from_db()
    assert order.state == OrderState.REQUESTED
    assert order.total == Decimal("207.50")
    assert order.correlation_id == "story-1"
    assert [(line.sku, line.name, line.quantity, line.unit_price) for line in order.lines.all()] == [
        ("KB-1", "Keyboard", 2, Decimal("89.00")),
        ("MS-2", "Mouse", 1, Decimal("29.50")),
    ]
    [record] = outbox_events(order)
    assert record.event_type == "orders.OrderRequested"
    assert record.topic == "orders"
    assert record.correlation_id == "story-1"
    assert record.causation_id == ""
    assert emitted(OrderRequested) == [
        OrderRequested(
            order_id=order.id,
            customer_id=customer.pk,
            lines=(
                OrderLine(sku="KB-1", quantity=2, unit_price=Decimal("89.00")),
                OrderLine(sku="MS-2", quantity=1, unit_price=Decimal("29.50")),
            ),
            total=Decimal("207.50"),
        )
    ]


def test_outside_a_request_each_order_starts_its_own_story(customer) -> None:
    stock_level("KB-1", available=5)
    first, second = place(customer, ("KB-1", 1)), place(customer, ("KB-1", 1))
    assert first.correlation_id != second.correlation_id
    assert outbox_events(first)[0].correlation_id == first.correlation_id


def test_too_little_stock_in_the_view_places_nothing_and_emits_nothing(customer) -> None:
    stock_level("KB-1", available=5)
    stock_level("MS-2", available=1)

    with pytest.raises(services.InsufficientStock) as raised:
        place(customer, ("KB-1", 5), ("MS-2", 2))

    assert raised.value.shortages == [services.Shortage(sku="MS-2", requested=2, available=1)]
    assert not Order.objects.exists()
    assert not OutboxRecord.objects.exists()


def test_unknown_sku_is_refused(customer) -> None:
    stock_level("KB-1", available=5)
    with pytest.raises(services.UnknownProducts) as raised:
        place(customer, ("KB-1", 1), ("NOPE", 1))
    assert raised.value.skus == ["NOPE"]
    assert not Order.objects.exists()


def test_idempotency_key_returns_the_same_order_for_the_same_body(customer) -> None:
    stock_level("KB-1", available=5)
    stock_level("MS-2", available=5)
    lines = [services.LineRequest("KB-1", 1), services.LineRequest("MS-2", 2)]

    first = services.place_order(customer=customer, lines=lines, payment_token="tok", idempotency_key="k-1")
    # Same body, lines in another order: still the same request.
    again = services.place_order(
        customer=customer, lines=list(reversed(lines)), payment_token="tok", idempotency_key="k-1"
    )

    assert first.created
    assert not again.created
    assert again.order.id == first.order.id
    assert Order.objects.count() == 1
    assert OutboxRecord.objects.count() == 1


def test_idempotency_key_with_another_body_is_refused(customer) -> None:
    stock_level("KB-1", available=5)
    place(customer, ("KB-1", 1), idempotency_key="k-1")
    with pytest.raises(services.IdempotencyKeyReused):
        place(customer, ("KB-1", 2), idempotency_key="k-1")
    assert Order.objects.count() == 1


def test_idempotency_keys_belong_to_one_customer(customer) -> None:
    stock_level("KB-1", available=5)
    other = make_user("dave")
    mine = place(customer, ("KB-1", 1), idempotency_key="k-1")
    theirs = place(other, ("KB-1", 1), idempotency_key="k-1")
    assert mine.id != theirs.id


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_with_one_key_place_one_order() -> None:
    customer = make_user("erin")
    stock_level("KB-1", available=50)

    def attempt() -> services.Placement:
        return services.place_order(
            customer=customer,
            lines=[services.LineRequest("KB-1", 1)],
            payment_token="tok",
            idempotency_key="same-key",
        )

    results = run_together([attempt] * 8, timeout=30)

    assert len({placement.order.id for placement in results}) == 1
    assert sum(placement.created for placement in results) == 1
    assert Order.objects.count() == 1
    assert len(emitted(OrderRequested)) == 1
