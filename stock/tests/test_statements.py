"""How many statements Stock's hot commands send to PostgreSQL: every order passes through
them twice (reserve, then commit or release), so a statement per sku is a cost per order."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from stock import services
from stock.events import ReservedLine
from stock.models import Reservation

from .helpers import add_product, forget_events, level

pytestmark = pytest.mark.django_db

SKUS = ("KB-1", "MS-1", "PAD-1")


def statements_of(command, **kwargs) -> list[str]:  # type: ignore[no-untyped-def]
    with CaptureQueriesContext(connection) as captured:
        command(**kwargs)
    return [query["sql"] for query in captured.captured_queries]


def level_updates(statements: list[str]) -> list[str]:
    return [
        sql
        for sql in statements
        if sql.lstrip().startswith(("UPDATE stock_stocklevel", 'UPDATE "stock_stocklevel"'))
    ]


@pytest.fixture
def reserved_order() -> uuid.UUID:
    for sku in SKUS:
        add_product(sku, on_hand=10)
    order_id = uuid.uuid4()
    services.reserve_for_order(order_id=order_id, lines=[ReservedLine(sku=sku, quantity=2) for sku in SKUS])
    forget_events()
    return order_id


def test_a_reservation_writes_all_of_its_levels_in_one_update() -> None:
    for sku in SKUS:
        add_product(sku, on_hand=10)

    statements = statements_of(
        services.reserve_for_order,
        order_id=uuid.uuid4(),
        lines=[ReservedLine(sku=sku, quantity=2) for sku in SKUS],
    )

    assert len(level_updates(statements)) == 1
    assert [(level(sku).reserved, level(sku).version) for sku in SKUS] == [(2, 2)] * 3


def test_a_commit_writes_all_of_its_levels_in_one_update(reserved_order: uuid.UUID) -> None:
    statements = statements_of(services.commit_reservation, order_id=reserved_order)

    assert len(level_updates(statements)) == 1
    assert [(level(sku).on_hand, level(sku).reserved) for sku in SKUS] == [(8, 0)] * 3


def test_a_release_moves_the_reservation_and_reads_its_lines_in_one_statement(
    reserved_order: uuid.UUID,
) -> None:
    statements = statements_of(services.release_reservation, order_id=reserved_order)

    reservation_statements = [sql for sql in statements if "stock_reservation" in sql]
    assert len(reservation_statements) == 1
    assert len(level_updates(statements)) == 1
    assert Reservation.objects.get(order_id=reserved_order).state == Reservation.State.RELEASED
    assert [(level(sku).on_hand, level(sku).reserved) for sku in SKUS] == [(10, 0)] * 3
