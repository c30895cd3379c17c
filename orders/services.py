"""The write path of the orders context: each command is one transaction that changes the
Order and emits the event describing the change (the transactional outbox).

`place_order` is called by the API; the others by the handlers of other contexts' events, and
they ignore (and log) any event that would move an order along a transition the state machine
does not allow, so redeliveries and stragglers change nothing. The handler-path commands open
`transaction.atomic(savepoint=False)`: inside the consumer runner they join its batch
transaction without a savepoint per event (a failure rolls the batch back and the runner
retries it); called anywhere else they are a transaction of their own.
"""

import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from backbone.aftercommit import call_on_commit, enqueue_on_commit
from backbone.correlation import correlation_scope, current_causation_id, current_correlation_id
from backbone.versioned import apply_if_newer, insert_if_absent
from outbox.emit import emit

from . import events
from .models import (
    Notification,
    NotificationKind,
    Order,
    OrderLine,
    OrderState,
    RejectionReason,
    ShipmentStatus,
    StockLevelView,
)
from .tasks import send_notification_email
from .wakeups import publish_change

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LineRequest:
    sku: str
    quantity: int


@dataclass(frozen=True)
class Placement:
    order: Order
    created: bool  # False when an Idempotency-Key returned the order an earlier request placed


@dataclass(frozen=True)
class Shortage:
    sku: str
    requested: int
    available: int


class OrderingError(Exception):
    """A request the service refuses; the message is fit for the customer."""


class UnknownProducts(OrderingError):
    def __init__(self, skus: Sequence[str]) -> None:
        self.skus = list(skus)
        super().__init__(f"unknown sku(s): {', '.join(self.skus)}")


class InsufficientStock(OrderingError):
    def __init__(self, shortages: Sequence[Shortage]) -> None:
        self.shortages = list(shortages)
        details = ", ".join(f"{s.sku} ({s.requested} requested, {s.available} available)" for s in shortages)
        super().__init__(f"not enough stock: {details}")


class IdempotencyKeyReused(OrderingError):
    def __init__(self, key: str) -> None:
        super().__init__(f"Idempotency-Key {key!r} was already used with a different request body")


# --- Placing an order -------------------------------------------------------------------------


def place_order(
    *,
    customer: AbstractBaseUser,
    lines: Sequence[LineRequest],
    payment_token: str,
    idempotency_key: str | None = None,
) -> Placement:
    """Check Orders' view of stock, then create the order and emit `OrderRequested` atomically.

    Raises UnknownProducts, InsufficientStock (nothing is written or emitted) or
    IdempotencyKeyReused. With an `idempotency_key` already used for the same body, returns
    the earlier order instead of placing a new one.
    """
    idempotency_key = idempotency_key or None  # "" is no key (and marks orders placed without one)
    fingerprint = request_fingerprint(lines=lines, payment_token=payment_token)
    if idempotency_key is not None:
        earlier = _earlier_order(customer=customer, key=idempotency_key, fingerprint=fingerprint)
        if earlier is not None:
            return Placement(order=earlier, created=False)
    levels = _check_stock(lines)
    try:
        order = _create_order(
            customer=customer,
            lines=lines,
            levels=levels,
            payment_token=payment_token,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
        )
    except IntegrityError:
        # A concurrent request with the same key may have won the unique constraint.
        earlier = (
            _earlier_order(customer=customer, key=idempotency_key, fingerprint=fingerprint)
            if idempotency_key is not None
            else None
        )
        if earlier is None:
            raise
        return Placement(order=earlier, created=False)
    log.info("order %s requested: %d line(s), total %s", order.id, len(lines), order.total)
    return Placement(order=order, created=True)


def request_fingerprint(*, lines: Sequence[LineRequest], payment_token: str) -> str:
    """Identifies a request body whatever the order of its lines."""
    canonical = {
        "lines": sorted([line.sku, line.quantity] for line in lines),
        "payment_token": payment_token,
    }
    return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()


def _earlier_order(*, customer: AbstractBaseUser, key: str, fingerprint: str) -> Order | None:
    earlier = Order.objects.filter(customer=customer, idempotency_key=key).first()
    if earlier is not None and earlier.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused(key)
    return earlier


def _check_stock(lines: Sequence[LineRequest]) -> dict[str, StockLevelView]:
    levels = StockLevelView.objects.in_bulk([line.sku for line in lines])
    unknown = [line.sku for line in lines if line.sku not in levels]
    if unknown:
        raise UnknownProducts(unknown)
    shortages = [
        Shortage(sku=line.sku, requested=line.quantity, available=max(levels[line.sku].available, 0))
        for line in lines
        if line.quantity > levels[line.sku].available
    ]
    if shortages:
        raise InsufficientStock(shortages)
    return levels


def _create_order(
    *,
    customer: AbstractBaseUser,
    lines: Sequence[LineRequest],
    levels: dict[str, StockLevelView],
    payment_token: str,
    idempotency_key: str | None,
    fingerprint: str,
) -> Order:
    # The request's story (or a new one, outside a request) becomes the order's story.
    with (
        correlation_scope(current_correlation_id(), current_causation_id()) as correlation_id,
        transaction.atomic(),
    ):
        order = Order.objects.create(
            customer=customer,
            payment_token=payment_token,
            total=sum((levels[line.sku].price * line.quantity for line in lines), Decimal("0.00")),
            correlation_id=correlation_id,
            idempotency_key=idempotency_key or "",
            request_fingerprint=fingerprint if idempotency_key else "",
        )
        order_lines = OrderLine.objects.bulk_create(
            OrderLine(
                order=order,
                sku=line.sku,
                name=levels[line.sku].name,
                quantity=line.quantity,
                unit_price=levels[line.sku].price,
            )
            for line in lines
        )
        emit(
            events.OrderRequested(
                order_id=order.id,
                customer_id=order.customer_id,
                # From the rows just written, not read back: placing an order is the hot path.
                lines=_contract_lines(order_lines),
                total=order.total,
            )
        )
    return order


def _contract_lines(lines: Iterable[OrderLine]) -> tuple[events.OrderLine, ...]:
    return tuple(
        events.OrderLine(sku=line.sku, quantity=line.quantity, unit_price=line.unit_price) for line in lines
    )


# --- Moving an order along its state machine (called by handlers) ------------------------------


def validate_order(*, order_id: uuid.UUID) -> Order | None:
    """Stock is reserved: ask Payments to charge."""
    with transaction.atomic(savepoint=False):
        order = _transition(order_id=order_id, source=OrderState.REQUESTED, target=OrderState.VALIDATED)
        if order is not None:
            emit(
                events.OrderValidated(
                    order_id=order.id,
                    customer_id=order.customer_id,
                    total=order.total,
                    payment_token=order.payment_token,
                )
            )
            _forget_payment_token(order)
        return order


def _forget_payment_token(order: Order) -> None:
    """Once Payments has it (or the order ended before payment) Orders needs the token no more:
    a secret not kept is a secret that cannot leak from here."""
    if order.payment_token:  # a declined payment's rejection finds it forgotten already
        order.payment_token = ""
        order.save(update_fields=["payment_token"])


# Each reason ends the order from one state only: stock fails before payment is asked for.
_REJECTED_FROM: dict[RejectionReason, OrderState] = {
    RejectionReason.OUT_OF_STOCK: OrderState.REQUESTED,
    RejectionReason.PAYMENT_DECLINED: OrderState.VALIDATED,
}


def reject_order(*, order_id: uuid.UUID, reason: RejectionReason) -> Order | None:
    """The order ends unfulfilled; Stock releases whatever it reserved."""
    with transaction.atomic(savepoint=False):
        order = _transition(
            order_id=order_id, source=_REJECTED_FROM[reason], target=OrderState.REJECTED, reason=reason
        )
        if order is not None:
            emit(events.OrderRejected(order_id=order.id, reason=reason.value))
            _forget_payment_token(order)
        return order


def confirm_order(*, order_id: uuid.UUID) -> Order | None:
    """Paid: Stock commits the reservation, Shipments prepares, the customer gets an email."""
    with transaction.atomic(savepoint=False):
        order = _transition(order_id=order_id, source=OrderState.VALIDATED, target=OrderState.CONFIRMED)
        if order is not None:
            emit(
                events.OrderConfirmed(
                    order_id=order.id,
                    customer_id=order.customer_id,
                    lines=_contract_lines(order.lines.all()),
                    total=order.total,
                )
            )
            _notify(order, NotificationKind.CONFIRMATION)
        return order


def _transition(
    *, order_id: uuid.UUID, source: OrderState, target: OrderState, reason: str = ""
) -> Order | None:
    """Move the (locked) order from `source` to `target`; None, logged, for any other situation."""
    order = Order.objects.select_for_update().filter(id=order_id).first()
    if order is None:
        log.warning("order %s is unknown here: %s ignored", order_id, target.label)
        return None
    if order.state != source or not order.can_become(target):
        log.info("order %s is %s, not %s: move to %s ignored", order_id, order.state, source, target)
        return None
    order.state = target
    order.reason = reason
    order.save(update_fields=["state", "reason", "updated_at"])
    call_on_commit(publish_change, order.id, description=f"wake-up of order {order.id}")
    log.info("order %s is %s%s", order.id, target, f" ({reason})" if reason else "")
    return order


# --- Shipment status, kept from Shipments' events ------------------------------------------------


def record_shipment_prepared(*, order_id: uuid.UUID, shipment_id: uuid.UUID) -> Order | None:
    with transaction.atomic(savepoint=False):
        order = _confirmed_order(order_id, "ShipmentPrepared")
        if order is None or order.shipment_status == ShipmentStatus.DISPATCHED:
            return None  # a dispatch already recorded is never walked back
        order.shipment_status = ShipmentStatus.PREPARED
        order.shipment_id = shipment_id
        order.save(update_fields=["shipment_status", "shipment_id", "updated_at"])
        call_on_commit(publish_change, order.id, description=f"wake-up of order {order.id}")
        return order


def record_shipment_dispatched(
    *,
    order_id: uuid.UUID,
    shipment_id: uuid.UUID,
    carrier: str,
    tracking_number: str,
    dispatched_at: datetime,
) -> Order | None:
    with transaction.atomic(savepoint=False):
        order = _confirmed_order(order_id, "ShipmentDispatched")
        if order is None or order.shipment_status == ShipmentStatus.DISPATCHED:
            return None
        order.shipment_status = ShipmentStatus.DISPATCHED
        order.shipment_id = shipment_id
        order.carrier = carrier
        order.tracking_number = tracking_number
        order.dispatched_at = dispatched_at
        order.save(
            update_fields=[
                "shipment_status",
                "shipment_id",
                "carrier",
                "tracking_number",
                "dispatched_at",
                "updated_at",
            ]
        )
        _notify(order, NotificationKind.DISPATCH)
        call_on_commit(publish_change, order.id, description=f"wake-up of order {order.id}")
        return order


def _confirmed_order(order_id: uuid.UUID, event_name: str) -> Order | None:
    order = Order.objects.select_for_update().filter(id=order_id).first()
    if order is None or order.state != OrderState.CONFIRMED:
        log.warning("%s for order %s, which is %s here: ignored", event_name, order_id, order and order.state)
        return None
    return order


# --- Notifications --------------------------------------------------------------------------------


def _notify(order: Order, kind: NotificationKind) -> None:
    """Record the intent with the state change; the task sends it after commit, once."""
    notification = Notification(order=order, kind=kind)
    if insert_if_absent(notification, unique_fields=["order", "kind"]):
        enqueue_on_commit(send_notification_email, notification.id)


# --- Orders' view of stock levels -------------------------------------------------------------------


def apply_stock_level(*, sku: str, name: str, price: Decimal, available: int, version: int) -> bool:
    """Apply a `StockLevelChanged` if it is newer than the view's row; True when it was."""
    return apply_if_newer(
        StockLevelView,
        lookup={"sku": sku},
        version=version,
        values={"name": name, "price": price, "available": available},
    )
