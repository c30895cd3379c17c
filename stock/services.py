"""The write path of the stock context: each command is one transaction that changes rows and
emits the events describing the change (StockLevelChanged for every sku whose level changed).

No overselling, under any concurrency: every command that changes levels locks the level rows
it touches with SELECT ... FOR UPDATE, always in sku order, so two orders asking for the same
skus in opposite orders queue up instead of deadlocking, and a table check constraint refuses
`reserved > on_hand` should a bug ever get that far.

The commands the handlers call open `transaction.atomic(savepoint=False)`: they join the
consumer runner's batch transaction without a savepoint per event (a failure rolls back the
whole batch, which the runner then retries), and are a transaction of their own elsewhere.
"""

import logging
from collections import Counter
from collections.abc import Iterable
from decimal import Decimal
from typing import Protocol
from uuid import UUID

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction

from backbone.statements import FixedSelect
from backbone.versioned import insert_if_absent
from outbox.emit import emit

from .events import (
    ReservedLine,
    Shortage,
    StockLevelChanged,
    StockReorderRequested,
    StockReservationFailed,
    StockReserved,
)
from .models import MAX_UNITS, Product, Reservation, ReservationLine, StockLevel, StockReceipt

log = logging.getLogger(__name__)

CENT = Decimal("0.01")


class RequestedLine(Protocol):
    """What an order asks for; OrderRequested's lines fit, as do stock's own ReservedLine."""

    @property
    def sku(self) -> str: ...

    @property
    def quantity(self) -> int: ...


def register_product(
    *, sku: str, name: str, price: Decimal, on_hand: int, reorder_point: int, reorder_quantity: int
) -> StockLevel:
    """Add a product with its opening stock, or update the catalog data of an existing one.

    Idempotent: registering the same product twice changes nothing the second time. `on_hand`
    is the opening stock of a *new* product only; an existing product keeps its level (it may
    have been sold or reserved since), and stock arrives through `receive_stock`.
    """
    price = Decimal(price)
    _require(on_hand >= 0, "on_hand must not be negative")
    _require(price >= 0 and price == price.quantize(CENT), "price must be a non-negative amount in cents")
    _require(reorder_point >= 0 and reorder_quantity >= 0, "reorder settings must not be negative")
    catalog = {
        "name": name,
        "price": price,
        "reorder_point": reorder_point,
        "reorder_quantity": reorder_quantity,
    }
    with transaction.atomic():
        levels = _locked_levels([sku])
        if not levels:
            product = Product(sku=sku, **catalog)
            if insert_if_absent(product, unique_fields=["sku"]):
                return _open_level(product, on_hand=on_hand)
            levels = _locked_levels([sku])  # a concurrent call registered it a moment ago
        level = levels[0]
        product = level.product
        if all(getattr(product, field) == value for field, value in catalog.items()):
            return level
        for field, value in catalog.items():
            setattr(product, field, value)
        product.save(update_fields=list(catalog))
        _change_levels(levels)
    log.info("product %s updated", sku)
    return level


def reserve_for_order(*, order_id: UUID, lines: Iterable[RequestedLine]) -> Reservation:
    """Reserve every line of the order, or nothing at all when one sku falls short.

    Emits StockReserved (and StockLevelChanged per sku) or StockReservationFailed with the
    shortages. Idempotent per order: a second call returns the first decision unchanged, even
    when stock has changed in between.
    """
    wanted = _quantities_by_sku(lines)
    with transaction.atomic(savepoint=False):
        # The reservation row is claimed first: a concurrent call for the same order waits on
        # its unique key, then finds the decision already made.
        reservation = Reservation(order_id=order_id, state=Reservation.State.RESERVED)
        if not insert_if_absent(reservation, unique_fields=["order_id"]):
            decided = Reservation.objects.get(order_id=order_id)
            log.info("order %s already has a reservation (%s); nothing to do", order_id, decided.state)
            return decided
        levels = {level.sku: level for level in _locked_levels(sorted(wanted))}
        shortages = [
            Shortage(sku=sku, requested=quantity, available=levels[sku].available if sku in levels else 0)
            for sku, quantity in sorted(wanted.items())
            if sku not in levels or levels[sku].available < quantity
        ]
        if shortages:
            reservation.state = Reservation.State.FAILED
            reservation.save(update_fields=["state", "updated_at"])
            emit(StockReservationFailed(order_id=order_id, shortages=tuple(shortages)))
            log.info("order %s: not enough stock of %s", order_id, ", ".join(s.sku for s in shortages))
            return reservation
        ReservationLine.objects.bulk_create(
            ReservationLine(reservation=reservation, product_id=sku, quantity=quantity)
            for sku, quantity in sorted(wanted.items())
        )
        emit(
            StockReserved(
                order_id=order_id,
                lines=tuple(
                    ReservedLine(sku=sku, quantity=quantity) for sku, quantity in sorted(wanted.items())
                ),
            )
        )
        _change_levels(levels.values(), reserved=dict(wanted))
    log.info("order %s: reserved %s", order_id, dict(sorted(wanted.items())))
    return reservation


def commit_reservation(*, order_id: UUID) -> bool:
    """The order is paid: the reserved goods leave the warehouse (on_hand and reserved fall).
    True when the reservation was committed now, False when there was none left to commit."""
    with transaction.atomic(savepoint=False):
        quantities = _settle_reservation(order_id, target=Reservation.State.COMMITTED, action="commit")
        if quantities is None:
            return False
        levels = _locked_levels(sorted(quantities))
        taken = {sku: -quantity for sku, quantity in quantities.items()}
        _change_levels(levels, on_hand=taken, reserved=taken)
    log.info("order %s: reservation committed", order_id)
    return True


def release_reservation(*, order_id: UUID) -> bool:
    """The order was rejected: what it reserved becomes available again. True when released now.

    A no-op (False) when nothing is reserved for the order (it was rejected for lack of stock,
    or the reservation was already released).
    """
    with transaction.atomic(savepoint=False):
        quantities = _settle_reservation(order_id, target=Reservation.State.RELEASED, action="release")
        if quantities is None:
            return False
        levels = _locked_levels(sorted(quantities))
        _change_levels(levels, reserved={sku: -quantity for sku, quantity in quantities.items()})
    log.info("order %s: reservation released", order_id)
    return True


class TooMuchStock(ValueError):
    """A receipt would take the stock on hand past what a level can count (MAX_UNITS)."""


def receive_stock(*, sku: str, quantity: int, received_by: AbstractBaseUser | None = None) -> StockLevel:
    """Book goods that arrived in the warehouse. Raises Product.DoesNotExist for an unknown sku,
    TooMuchStock when the stock on hand would no longer fit its column."""
    _require(quantity > 0, "quantity must be greater than zero")
    with transaction.atomic():
        levels = _locked_levels([sku])
        if not levels:
            raise Product.DoesNotExist(f"no product with sku {sku!r}")
        if levels[0].on_hand + quantity > MAX_UNITS:
            raise TooMuchStock(
                f"{quantity} more units would put {levels[0].on_hand + quantity} of {sku} on hand; "
                f"at most {MAX_UNITS} fit"
            )
        StockReceipt.objects.create(product_id=sku, quantity=quantity, received_by=received_by)
        _change_levels(levels, on_hand={sku: quantity})
    log.info("received %d x %s", quantity, sku)
    return levels[0]


# --- helpers --------------------------------------------------------------------------------


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _quantities_by_sku(lines: Iterable[RequestedLine]) -> Counter[str]:
    wanted: Counter[str] = Counter()
    for line in lines:
        _require(line.quantity > 0, f"quantity of {line.sku} must be greater than zero")
        wanted[line.sku] += line.quantity
    _require(bool(wanted), "an order needs at least one line")
    return wanted


def _locked_levels(skus: list[str]) -> list[StockLevel]:
    """Lock the levels of `skus` in sku order: the one rule that keeps reservations deadlock-free.

    Only the level rows are locked. Their products are read after the locks are held, by a
    statement of their own, so they are the latest committed ones: catalog data changes only
    under the level's lock (`register_product`), so a level event never carries a stale price.
    """
    levels = _LOCK_LEVELS([skus])
    products = {product.sku: product for product in _PRODUCTS([[level.product_id for level in levels]])}
    for level in levels:
        level.product = products[level.product_id]
    return levels


# Fixed statements (backbone/statements.py): compiled as querysets, these two reads cost more
# CPU than the rest of a reservation.
_LOCK_LEVELS = FixedSelect(StockLevel, "WHERE product_id = ANY(%s) ORDER BY product_id FOR UPDATE")
_PRODUCTS = FixedSelect(Product, "WHERE sku = ANY(%s)")


def _open_level(product: Product, *, on_hand: int) -> StockLevel:
    level = StockLevel(product=product, on_hand=on_hand)
    _settle_reorder(level)
    level.save(force_insert=True)
    _emit_level(level)
    log.info("product %s registered with %d on hand", product.sku, on_hand)
    return level


# Moves a reserved reservation on and reads its lines in one statement. The UPDATE locks the
# reservation row before the levels are locked, as the SELECT ... FOR UPDATE it replaces did,
# so a second delivery for the same order waits here and then finds nothing reserved.
_SETTLE = """
    WITH settled AS (
        UPDATE stock_reservation SET state = %s, updated_at = now()
        WHERE order_id = %s AND state = %s
        RETURNING order_id
    )
    SELECT line.product_id, line.quantity
    FROM settled JOIN stock_reservationline AS line ON line.reservation_id = settled.order_id
"""


def _settle_reservation(order_id: UUID, *, target: str, action: str) -> dict[str, int] | None:
    """Move the order's reservation from RESERVED to `target`: its quantities by sku, or None
    (logged) when nothing is reserved for the order."""
    with connection.cursor() as cursor:
        cursor.execute(_SETTLE, [target, order_id, Reservation.State.RESERVED])
        quantities = dict(cursor.fetchall())
    if quantities:  # a reservation is RESERVED only with its lines (reserve_for_order)
        return quantities
    state = Reservation.objects.filter(order_id=order_id).values_list("state", flat=True).first()
    if state is None:
        log.warning("order %s: no reservation to %s", order_id, action)
    else:
        log.info("order %s: reservation is %s; nothing to %s", order_id, state, action)
    return None


def _change_levels(
    levels: Iterable[StockLevel],
    *,
    on_hand: dict[str, int] | None = None,
    reserved: dict[str, int] | None = None,
) -> None:
    """Apply the deltas to locked levels, bump their versions and emit their new state.
    The new states are written by one UPDATE for all the levels, not one per sku."""
    changed = list(levels)
    for level in changed:
        level.on_hand += (on_hand or {}).get(level.sku, 0)
        level.reserved += (reserved or {}).get(level.sku, 0)
        level.version += 1
        _settle_reorder(level)
        _emit_level(level)
    if not changed:
        return
    level_columns = zip(
        *((lv.product_id, lv.on_hand, lv.reserved, lv.version, lv.reorder_requested) for lv in changed),
        strict=True,
    )
    with connection.cursor() as cursor:
        cursor.execute(_UPDATE_LEVELS, [list(column) for column in level_columns])


# The check constraints (never oversold, never negative) hold for this as for any UPDATE.
_UPDATE_LEVELS = """
    UPDATE stock_stocklevel AS level
    SET on_hand = new.on_hand, reserved = new.reserved, version = new.version,
        reorder_requested = new.reorder_requested, updated_at = now()
    FROM unnest(%s::text[], %s::integer[], %s::integer[], %s::bigint[], %s::boolean[])
        AS new (sku, on_hand, reserved, version, reorder_requested)
    WHERE level.product_id = new.sku
"""


def _settle_reorder(level: StockLevel) -> None:
    """Ask to buy more once per crossing of the reorder point; re-arm once stock is above it."""
    point = level.product.reorder_point
    if level.available <= point and not level.reorder_requested:
        level.reorder_requested = True
        emit(
            StockReorderRequested(
                sku=level.sku,
                available=level.available,
                reorder_point=point,
                reorder_quantity=level.product.reorder_quantity,
            )
        )
        log.info(
            "%s: %d available, at or below the reorder point %d: reorder requested",
            level.sku,
            level.available,
            point,
        )
    elif level.available > point and level.reorder_requested:
        level.reorder_requested = False


def _emit_level(level: StockLevel) -> None:
    emit(
        StockLevelChanged(
            sku=level.sku,
            name=level.product.name,
            price=level.product.price,
            on_hand=level.on_hand,
            reserved=level.reserved,
            available=level.available,
            version=level.version,
        )
    )
