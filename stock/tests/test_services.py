"""Stock's write path: rows and the events emitted with them, on the real PostgreSQL."""

import json
import uuid
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from backbone.contracts import registry
from outbox.models import OutboxRecord
from outbox.testing import emitted
from stock import services
from stock.events import (
    ReservedLine,
    Shortage,
    StockLevelChanged,
    StockReorderRequested,
    StockReservationFailed,
    StockReserved,
)
from stock.models import Product, Reservation, StockLevel

from .helpers import add_product, forget_events, level

pytestmark = pytest.mark.django_db


def lines(**quantities: int) -> list[ReservedLine]:
    return [
        ReservedLine(sku=sku.replace("_", "-"), quantity=quantity) for sku, quantity in quantities.items()
    ]


# --- register_product -------------------------------------------------------------------------


def test_register_product_opens_a_level_and_emits_its_state() -> None:
    add_product("MUG-1", on_hand=12, reorder_point=2)

    stock = level("MUG-1")
    assert (stock.on_hand, stock.reserved, stock.version) == (12, 0, 1)
    assert emitted(StockLevelChanged) == [
        StockLevelChanged(
            sku="MUG-1",
            name="Product MUG-1",
            price=Decimal("9.50"),
            on_hand=12,
            reserved=0,
            available=12,
            version=1,
        )
    ]
    assert emitted(StockReorderRequested) == []


def test_register_product_twice_changes_nothing() -> None:
    add_product("MUG-1", on_hand=12)
    add_product("MUG-1", on_hand=12)

    assert level("MUG-1").version == 1
    assert len(emitted(StockLevelChanged)) == 1


def test_register_product_updates_the_catalog_but_keeps_the_level() -> None:
    add_product("MUG-1", on_hand=12)
    services.reserve_for_order(order_id=uuid.uuid4(), lines=lines(MUG_1=5))
    forget_events()

    services.register_product(
        sku="MUG-1", name="Big mug", price=Decimal("11.00"), on_hand=100, reorder_point=0, reorder_quantity=10
    )

    stock = level("MUG-1")
    assert (stock.on_hand, stock.reserved, stock.version) == (12, 5, 3)
    assert Product.objects.get(sku="MUG-1").name == "Big mug"
    [changed] = emitted(StockLevelChanged)
    assert (changed.name, changed.price, changed.available, changed.version) == (
        "Big mug",
        Decimal("11.00"),
        7,
        3,
    )


def test_a_new_product_at_its_reorder_point_asks_for_more_at_once() -> None:
    add_product("MUG-1", on_hand=2, reorder_point=2, reorder_quantity=20)

    assert emitted(StockReorderRequested) == [
        StockReorderRequested(sku="MUG-1", available=2, reorder_point=2, reorder_quantity=20)
    ]
    assert level("MUG-1").reorder_requested is True


@pytest.mark.parametrize(
    ("field", "value"),
    [("on_hand", -1), ("price", Decimal("-1")), ("price", Decimal("1.005")), ("reorder_point", -1)],
)
def test_register_product_refuses_bad_input(field: str, value: object) -> None:
    arguments = {"sku": "MUG-1", "name": "Mug", "price": Decimal("1"), "on_hand": 1, "reorder_point": 0}
    with pytest.raises(ValueError):  # noqa: PT011  (the message is checked by the API tests' field errors)
        services.register_product(**{**arguments, field: value}, reorder_quantity=1)
    assert not Product.objects.exists()


# --- reserve_for_order ------------------------------------------------------------------------


def test_reservation_takes_every_line_and_emits_one_level_per_sku() -> None:
    add_product("MUG-1", on_hand=10)
    add_product("TEE-2", on_hand=3)
    forget_events()
    order_id = uuid.uuid4()

    reservation = services.reserve_for_order(order_id=order_id, lines=lines(TEE_2=3, MUG_1=4))

    assert reservation.state == Reservation.State.RESERVED
    assert dict(reservation.lines.values_list("product_id", "quantity")) == {"MUG-1": 4, "TEE-2": 3}
    assert (level("MUG-1").reserved, level("MUG-1").on_hand, level("TEE-2").reserved) == (4, 10, 3)
    assert emitted(StockReserved) == [StockReserved(order_id=order_id, lines=lines(MUG_1=4, TEE_2=3))]
    assert [(e.sku, e.reserved, e.available, e.version) for e in emitted(StockLevelChanged)] == [
        ("MUG-1", 4, 6, 2),
        ("TEE-2", 3, 0, 2),
    ]


def test_reservation_is_all_or_nothing() -> None:
    add_product("MUG-1", on_hand=10)
    add_product("TEE-2", on_hand=2)
    forget_events()
    order_id = uuid.uuid4()

    reservation = services.reserve_for_order(order_id=order_id, lines=lines(MUG_1=4, TEE_2=3, CAP_9=1))

    assert reservation.state == Reservation.State.FAILED
    assert not reservation.lines.exists()
    assert [(s.reserved, s.version) for s in StockLevel.objects.all()] == [(0, 1), (0, 1)]
    assert emitted(StockReservationFailed) == [
        StockReservationFailed(
            order_id=order_id,
            shortages=(
                Shortage(sku="CAP-9", requested=1, available=0),
                Shortage(sku="TEE-2", requested=3, available=2),
            ),
        )
    ]
    assert emitted(StockReserved) == []
    assert emitted(StockLevelChanged) == []


def test_lines_of_the_same_sku_are_reserved_together() -> None:
    add_product("MUG-1", on_hand=5)

    failed = services.reserve_for_order(order_id=uuid.uuid4(), lines=lines(MUG_1=3) + lines(MUG_1=3))
    reserved = services.reserve_for_order(order_id=uuid.uuid4(), lines=lines(MUG_1=2) + lines(MUG_1=3))

    assert (failed.state, reserved.state) == (Reservation.State.FAILED, Reservation.State.RESERVED)
    assert emitted(StockReservationFailed)[0].shortages == (Shortage(sku="MUG-1", requested=6, available=5),)
    assert level("MUG-1").available == 0


def test_a_second_request_for_the_same_order_keeps_the_first_decision() -> None:
    add_product("MUG-1", on_hand=1)
    order_id = uuid.uuid4()
    services.reserve_for_order(order_id=order_id, lines=lines(MUG_1=2))
    services.receive_stock(sku="MUG-1", quantity=10)
    forget_events()

    again = services.reserve_for_order(order_id=order_id, lines=lines(MUG_1=2))

    assert again.state == Reservation.State.FAILED
    assert level("MUG-1").reserved == 0
    assert not OutboxRecord.objects.exists()


def test_a_reserved_order_is_not_reserved_twice() -> None:
    add_product("MUG-1", on_hand=10)
    order_id = uuid.uuid4()
    services.reserve_for_order(order_id=order_id, lines=lines(MUG_1=2))
    forget_events()

    services.reserve_for_order(order_id=order_id, lines=lines(MUG_1=2))

    assert level("MUG-1").reserved == 2
    assert not OutboxRecord.objects.exists()


# --- commit and release -----------------------------------------------------------------------


def test_commit_takes_the_goods_out_of_the_warehouse_once() -> None:
    add_product("MUG-1", on_hand=10)
    order_id = uuid.uuid4()
    services.reserve_for_order(order_id=order_id, lines=lines(MUG_1=4))
    forget_events()

    services.commit_reservation(order_id=order_id)
    services.commit_reservation(order_id=order_id)

    stock = level("MUG-1")
    assert (stock.on_hand, stock.reserved, stock.available, stock.version) == (6, 0, 6, 3)
    assert Reservation.objects.get(order_id=order_id).state == Reservation.State.COMMITTED
    assert [(e.on_hand, e.reserved, e.version) for e in emitted(StockLevelChanged)] == [(6, 0, 3)]


def test_release_makes_the_reserved_goods_available_again_once() -> None:
    add_product("MUG-1", on_hand=10)
    order_id = uuid.uuid4()
    services.reserve_for_order(order_id=order_id, lines=lines(MUG_1=4))
    forget_events()

    services.release_reservation(order_id=order_id)
    services.release_reservation(order_id=order_id)

    stock = level("MUG-1")
    assert (stock.on_hand, stock.reserved, stock.version) == (10, 0, 3)
    assert Reservation.objects.get(order_id=order_id).state == Reservation.State.RELEASED
    assert [(e.reserved, e.available) for e in emitted(StockLevelChanged)] == [(0, 10)]


def test_release_after_a_failed_reservation_changes_nothing() -> None:
    add_product("MUG-1", on_hand=1)
    order_id = uuid.uuid4()
    services.reserve_for_order(order_id=order_id, lines=lines(MUG_1=5))
    forget_events()

    assert services.release_reservation(order_id=order_id) is False
    assert services.release_reservation(order_id=uuid.uuid4()) is False
    assert services.commit_reservation(order_id=order_id) is False

    assert Reservation.objects.get(order_id=order_id).state == Reservation.State.FAILED
    assert not OutboxRecord.objects.exists()


def test_a_committed_reservation_is_not_released() -> None:
    add_product("MUG-1", on_hand=10)
    order_id = uuid.uuid4()
    services.reserve_for_order(order_id=order_id, lines=lines(MUG_1=4))
    services.commit_reservation(order_id=order_id)

    services.release_reservation(order_id=order_id)

    assert (level("MUG-1").on_hand, level("MUG-1").reserved) == (6, 0)


# --- reorder --------------------------------------------------------------------------------


def test_reorder_is_requested_once_per_crossing_and_receipts_rearm_it() -> None:
    add_product("MUG-1", on_hand=10, reorder_point=3, reorder_quantity=25)

    def reserve(quantity: int) -> None:
        services.reserve_for_order(order_id=uuid.uuid4(), lines=lines(MUG_1=quantity))

    reserve(6)  # 4 available: above the point
    assert emitted(StockReorderRequested) == []
    reserve(1)  # 3 available: crossing
    reserve(1)  # 2 available: still below, asked already
    assert emitted(StockReorderRequested) == [
        StockReorderRequested(sku="MUG-1", available=3, reorder_point=3, reorder_quantity=25)
    ]

    services.receive_stock(sku="MUG-1", quantity=5)  # 7 available: above again, re-armed
    assert level("MUG-1").reorder_requested is False
    assert len(emitted(StockReorderRequested)) == 1

    reserve(4)  # 3 available: the next crossing
    assert [e.available for e in emitted(StockReorderRequested)] == [3, 3]


def test_a_receipt_that_stays_at_or_below_the_point_does_not_rearm() -> None:
    add_product("MUG-1", on_hand=1, reorder_point=5)

    services.receive_stock(sku="MUG-1", quantity=4)  # 5 available: at the point, still asked

    assert level("MUG-1").reorder_requested is True
    assert len(emitted(StockReorderRequested)) == 1


def test_a_release_above_the_point_rearms() -> None:
    add_product("MUG-1", on_hand=10, reorder_point=5)
    order_id = uuid.uuid4()
    services.reserve_for_order(order_id=order_id, lines=lines(MUG_1=6))
    assert level("MUG-1").reorder_requested is True

    services.release_reservation(order_id=order_id)

    assert level("MUG-1").reorder_requested is False


# --- receive_stock --------------------------------------------------------------------------


def test_receive_stock_adds_to_on_hand_and_records_the_receipt() -> None:
    add_product("MUG-1", on_hand=2)
    forget_events()

    services.receive_stock(sku="MUG-1", quantity=8)

    stock = level("MUG-1")
    assert (stock.on_hand, stock.version) == (10, 2)
    assert list(stock.product.receipts.values_list("quantity", flat=True)) == [8]
    assert [(e.on_hand, e.version) for e in emitted(StockLevelChanged)] == [(10, 2)]


def test_receive_stock_refuses_unknown_skus_and_non_positive_quantities() -> None:
    add_product("MUG-1", on_hand=2)

    with pytest.raises(Product.DoesNotExist):
        services.receive_stock(sku="NOPE", quantity=1)
    with pytest.raises(ValueError, match="greater than zero"):
        services.receive_stock(sku="MUG-1", quantity=0)
    assert level("MUG-1").on_hand == 2


# --- the last line of defence and the contract ------------------------------------------------


def test_the_database_refuses_a_level_with_more_reserved_than_on_hand() -> None:
    add_product("MUG-1", on_hand=2)

    with pytest.raises(IntegrityError), transaction.atomic():
        StockLevel.objects.filter(product_id="MUG-1").update(reserved=3)


def test_every_emitted_event_decodes_back_to_its_contract() -> None:
    """What a consumer does with an outbox row: ce_dataversion is the contract's version, even
    for StockLevelChanged, whose own `version` field counts the sku's changes."""
    add_product("MUG-1", on_hand=4, reorder_point=2)
    services.reserve_for_order(order_id=uuid.uuid4(), lines=lines(MUG_1=3))
    services.reserve_for_order(order_id=uuid.uuid4(), lines=lines(MUG_1=3))

    rows = list(OutboxRecord.objects.order_by("id"))
    assert {row.event_type for row in rows} == {
        cls.type_name
        for cls in (StockLevelChanged, StockReorderRequested, StockReserved, StockReservationFailed)
    }
    for row in rows:
        event = registry.decode(row.event_type, row.data_version, json.dumps(row.payload).encode())
        assert row.data_version == event.contract_version
        assert row.key == event.key
