"""Placing an order: the API's command. It checks Orders' view of stock, then writes the order
and its `OrderRequested` in one transaction; an Idempotency-Key makes a retried request
return the order it placed the first time."""

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from backbone.aftercommit import call_on_commit
from backbone.correlation import correlation_scope, current_causation_id, current_correlation_id
from outbox.emit import emit

from .. import events
from ..metrics import count_placed
from ..models import Order, OrderLine, StockLevelView
from ..selectors import stock_levels_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LineRequest:
    sku: str
    quantity: int


@dataclass(frozen=True)
class Placement:
    order: Order
    lines: Sequence[OrderLine]  # the order's, in the order they were placed
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
            return _replayed(earlier)
    levels = _check_stock(lines)
    try:
        order, order_lines = _create_order(
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
        return _replayed(earlier)
    log.info("order %s requested: %d line(s), total %s", order.id, len(lines), order.total)
    return Placement(order=order, lines=order_lines, created=True)


def _replayed(earlier: Order) -> Placement:
    return Placement(order=earlier, lines=list(earlier.lines.all()), created=False)


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
    levels = stock_levels_of([line.sku for line in lines])
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
) -> tuple[Order, list[OrderLine]]:
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
                lines=contract_lines(order_lines),
                total=order.total,
            )
        )
        call_on_commit(count_placed, description="orders placed metric")
    # In the order of their ids, as a read of the order lists them.
    return order, sorted(order_lines, key=lambda line: line.id)


def contract_lines(lines: Iterable[OrderLine]) -> tuple[events.OrderLine, ...]:
    """An order's lines in the events' shape (OrderRequested and OrderConfirmed carry them)."""
    return tuple(
        events.OrderLine(sku=line.sku, quantity=line.quantity, unit_price=line.unit_price) for line in lines
    )
