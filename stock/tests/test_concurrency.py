"""Reservations under real concurrency: many threads, each with its own database connection."""

import random
import uuid
from collections.abc import Callable

import pytest

from backbone.testing import run_together
from outbox.testing import emitted
from stock import services
from stock.events import ReservedLine, StockReservationFailed, StockReserved
from stock.models import Reservation, StockLevel

from .helpers import add_product, level

pytestmark = pytest.mark.django_db(transaction=True)


def reserve(order_id: uuid.UUID, **quantities: int) -> Callable[[], object]:
    lines = [
        ReservedLine(sku=sku.replace("_", "-"), quantity=quantity) for sku, quantity in quantities.items()
    ]
    return lambda: services.reserve_for_order(order_id=order_id, lines=lines)


def test_forty_buyers_of_ten_mugs_never_oversell() -> None:
    add_product("MUG-1", on_hand=10)

    run_together([reserve(uuid.uuid4(), MUG_1=1) for _ in range(40)])

    stock = level("MUG-1")
    assert (stock.on_hand, stock.reserved, stock.available) == (10, 10, 0)
    states = list(Reservation.objects.values_list("state", flat=True))
    assert states.count(Reservation.State.RESERVED) == 10
    assert states.count(Reservation.State.FAILED) == 30
    assert (len(emitted(StockReserved)), len(emitted(StockReservationFailed))) == (10, 30)
    assert stock.version == 1 + 10  # one change per successful reservation


def test_orders_asking_for_the_same_skus_in_opposite_orders_do_not_deadlock() -> None:
    skus = ["A-1", "B-2", "C-3", "D-4"]
    for sku in skus:
        add_product(sku, on_hand=1000)
    shuffled = random.Random(11)
    calls = []
    for _ in range(30):
        order = shuffled.sample(skus, k=len(skus))
        calls.append(reserve(uuid.uuid4(), **{sku.replace("-", "_"): 1 for sku in order}))

    run_together(calls)  # a deadlock would raise psycopg.errors.DeadlockDetected here

    assert [stock.reserved for stock in StockLevel.objects.order_by("pk")] == [30, 30, 30, 30]


def test_the_same_order_delivered_twice_at_once_is_reserved_once() -> None:
    add_product("MUG-1", on_hand=10)
    order_id = uuid.uuid4()

    run_together([reserve(order_id, MUG_1=3) for _ in range(8)])

    assert level("MUG-1").reserved == 3
    assert Reservation.objects.count() == 1
    assert len(emitted(StockReserved)) == 1


def test_commits_and_releases_racing_new_reservations_keep_the_books_straight() -> None:
    add_product("MUG-1", on_hand=20)
    held = [uuid.uuid4() for _ in range(10)]
    for order_id in held:
        services.reserve_for_order(order_id=order_id, lines=[ReservedLine(sku="MUG-1", quantity=2)])

    calls: list[Callable[[], object]] = []
    for index, order_id in enumerate(held):
        settle = services.commit_reservation if index % 2 else services.release_reservation
        calls.append(lambda settle=settle, order_id=order_id: settle(order_id=order_id))
    calls += [reserve(uuid.uuid4(), MUG_1=2) for _ in range(10)]

    run_together(calls)

    stock = level("MUG-1")
    committed = 5 * 2
    reserved_now = 2 * Reservation.objects.filter(state=Reservation.State.RESERVED).count()
    assert (stock.on_hand, stock.reserved) == (20 - committed, reserved_now)
    assert stock.reserved <= stock.on_hand
