"""Stock's handlers, called as the consumer runner calls them: in a transaction and a correlation scope."""

import uuid
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from backbone.subscriptions import subscriptions
from backbone.testing import deliver, envelope_for
from orders.events import OrderConfirmed, OrderLine, OrderRejected, OrderRequested
from outbox.models import OutboxRecord
from outbox.testing import emitted
from stock import handlers
from stock.events import ReservedLine, StockLevelChanged, StockReserved
from stock.models import Reservation

from .helpers import add_product, forget_events, level

pytestmark = pytest.mark.django_db


def order_lines(**quantities: int) -> tuple[OrderLine, ...]:
    return tuple(
        OrderLine(sku=sku.replace("_", "-"), quantity=quantity, unit_price=Decimal("9.50"))
        for sku, quantity in quantities.items()
    )


def test_routing_table_is_what_the_consumer_runner_sees() -> None:
    registered = subscriptions.for_context("stock")

    assert {type_name: [sub.handler for sub in subs] for type_name, subs in registered.items()} == {
        event_type.type_name: [handler] for event_type, handler in handlers.ROUTES.items()
    }
    assert handlers.REBUILDABLE_VIEWS == []


def test_an_order_story_reserves_then_commits_and_events_carry_its_correlation() -> None:
    add_product("MUG-1", on_hand=5)
    forget_events()
    order_id = uuid.uuid4()
    requested = OrderRequested(
        order_id=order_id, customer_id=7, lines=order_lines(MUG_1=2), total=Decimal("19.00")
    )

    envelope = deliver(handlers.on_order_requested, requested)

    assert emitted(StockReserved) == [
        StockReserved(order_id=order_id, lines=(ReservedLine(sku="MUG-1", quantity=2),))
    ]
    assert set(OutboxRecord.objects.values_list("correlation_id", "causation_id")) == {
        (envelope.correlation_id, envelope.id)
    }

    confirmed = OrderConfirmed(
        order_id=order_id, customer_id=7, lines=order_lines(MUG_1=2), total=Decimal("19.00")
    )
    deliver(handlers.on_order_confirmed, confirmed)

    assert (level("MUG-1").on_hand, level("MUG-1").reserved) == (3, 0)
    assert Reservation.objects.get(order_id=order_id).state == Reservation.State.COMMITTED


@pytest.mark.parametrize("reason", ["out_of_stock", "payment_declined"])
def test_a_rejected_order_releases_what_was_reserved(reason: str) -> None:
    add_product("MUG-1", on_hand=5)
    order_id = uuid.uuid4()
    deliver(
        handlers.on_order_requested,
        OrderRequested(order_id=order_id, customer_id=7, lines=order_lines(MUG_1=5), total=Decimal("47.50")),
    )
    forget_events()

    deliver(handlers.on_order_rejected, OrderRejected(order_id=order_id, reason=reason))

    assert level("MUG-1").available == 5
    assert [e.available for e in emitted(StockLevelChanged)] == [5]


def test_handlers_join_the_batch_transaction_without_savepoints() -> None:
    """The consumer runner applies a batch in one transaction; a savepoint per event would cost
    round trips and subtransactions."""
    add_product("MUG-1", on_hand=5)
    order_id = uuid.uuid4()
    requested = OrderRequested(
        order_id=order_id, customer_id=7, lines=order_lines(MUG_1=1), total=Decimal("9.50")
    )
    confirmed = OrderConfirmed(
        order_id=order_id, customer_id=7, lines=order_lines(MUG_1=1), total=Decimal("9.50")
    )
    batch = [
        (handlers.on_order_requested, requested),
        (handlers.on_order_requested, requested),  # redelivered
        (handlers.on_order_confirmed, confirmed),
        (handlers.on_order_rejected, OrderRejected(order_id=uuid.uuid4(), reason="out_of_stock")),
    ]

    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        for handler, event in batch:
            handler(event, envelope_for(event))

    assert [query["sql"] for query in queries.captured_queries if "SAVEPOINT" in query["sql"]] == []
    assert level("MUG-1").on_hand == 4
