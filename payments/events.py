"""Contracts the Payments context publishes on topic `payments` (key: the order id)."""

from decimal import Decimal
from uuid import UUID

from backbone.contracts import Event


class PaymentProcessed(Event, topic="payments", key="order_id", version=1):
    order_id: UUID
    payment_id: UUID
    amount: Decimal


class PaymentFailed(Event, topic="payments", key="order_id", version=1):
    order_id: UUID
    payment_id: UUID
    amount: Decimal
    reason: str
