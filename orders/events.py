"""Contracts the Orders context publishes on topic `orders` (key: the order id)."""

from decimal import Decimal
from typing import Literal
from uuid import UUID

from pydantic import Field

from backbone.contracts import Contract, Event


class OrderLine(Contract):
    sku: str
    quantity: int = Field(gt=0)
    unit_price: Decimal


class OrderRequested(Event, topic="orders", key="order_id", version=1):
    """A customer asked for these lines; Stock decides whether they can be reserved."""

    order_id: UUID
    customer_id: int
    lines: tuple[OrderLine, ...]
    total: Decimal


class OrderValidated(Event, topic="orders", key="order_id", version=1):
    """Stock is reserved; Payments charges the amount with the customer's payment token."""

    order_id: UUID
    customer_id: int
    total: Decimal
    payment_token: str


RejectionReason = Literal["out_of_stock", "payment_declined"]


class OrderRejected(Event, topic="orders", key="order_id", version=1):
    """The order ends unfulfilled; Stock releases whatever it reserved for it."""

    order_id: UUID
    reason: RejectionReason


class OrderConfirmed(Event, topic="orders", key="order_id", version=1):
    """Paid and reserved: Stock commits the reservation, Shipments prepares a shipment."""

    order_id: UUID
    customer_id: int
    lines: tuple[OrderLine, ...]
    total: Decimal
