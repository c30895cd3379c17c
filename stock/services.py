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
from django.db import transaction

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


def commit_reservation(*, order_id: UUID) -> Reservation | None:
    """The order is paid: the reserved goods leave the warehouse (on_hand and reserved fall)."""
    with transaction.atomic(savepoint=False):
        reservation = _locked_reservation(order_id, expected=Reservation.State.RESERVED, action="commit")
        if reservation is None:
            return None
        quantities = _reserved_quantities(reservation)
        levels = _locked_levels(sorted(quantities))
        taken = {sku: -quantity for sku, quantity in quantities.items()}
        _change_levels(levels, on_hand=taken, reserved=taken)
        reservation.state = Reservation.State.COMMITTED
        reservation.save(update_fields=["state", "updated_at"])
    log.info("order %s: reservation committed", order_id)
    return reservation


def release_reservation(*, order_id: UUID) -> Reservation | None:
    """The order was rejected: what it reserved becomes available again.

    A no-op when nothing is reserved for the order (it was rejected for lack of stock, or the
    reservation was already released).
    """
    with transaction.atomic(savepoint=False):
        reservation = _locked_reservation(order_id, expected=Reservation.State.RESERVED, action="release")
        if reservation is None:
            return None
        quantities = _reserved_quantities(reservation)
        levels = _locked_levels(sorted(quantities))
        _change_levels(levels, reserved={sku: -quantity for sku, quantity in quantities.items()})
        reservation.state = Reservation.State.RELEASED
        reservation.save(update_fields=["state", "updated_at"])
    log.info("order %s: reservation released", order_id)
    return reservation


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
    levels = list(
        StockLevel.objects.select_for_update(of=("self",)).filter(product_id__in=skus).order_by("pk")
    )
    products = Product.objects.in_bulk([level.product_id for level in levels])
    for level in levels:
        level.product = products[level.product_id]
    return levels


def _open_level(product: Product, *, on_hand: int) -> StockLevel:
    level = StockLevel(product=product, on_hand=on_hand)
    _settle_reorder(level)
    level.save(force_insert=True)
    _emit_level(level)
    log.info("product %s registered with %d on hand", product.sku, on_hand)
    return level


def _locked_reservation(order_id: UUID, *, expected: str, action: str) -> Reservation | None:
    reservation = Reservation.objects.select_for_update().filter(order_id=order_id).first()
    if reservation is None:
        log.warning("order %s: no reservation to %s", order_id, action)
        return None
    if reservation.state != expected:
        log.info("order %s: reservation is %s; nothing to %s", order_id, reservation.state, action)
        return None
    return reservation


def _reserved_quantities(reservation: Reservation) -> dict[str, int]:
    return dict(reservation.lines.values_list("product_id", "quantity"))


def _change_levels(
    levels: Iterable[StockLevel],
    *,
    on_hand: dict[str, int] | None = None,
    reserved: dict[str, int] | None = None,
) -> None:
    """Apply the deltas to locked levels, bump their versions and emit their new state."""
    for level in levels:
        level.on_hand += (on_hand or {}).get(level.sku, 0)
        level.reserved += (reserved or {}).get(level.sku, 0)
        level.version += 1
        _settle_reorder(level)
        level.save(update_fields=["on_hand", "reserved", "version", "reorder_requested", "updated_at"])
        _emit_level(level)


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
