"""Small builders for the orders tests: users, catalog rows and event deliveries."""

import uuid
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from backbone.contracts import Event
from backbone.correlation import correlation_scope
from backbone.envelope import Envelope, format_time
from orders import services
from orders.models import Order
from outbox.models import OutboxRecord

PASSWORD = "a-long-test-password"


def make_user(username: str, *, staff: bool = False, email: str | None = None) -> AbstractBaseUser:
    return get_user_model().objects.create_user(
        username=username,
        password=PASSWORD,
        email=f"{username}@example.com" if email is None else email,
        is_staff=staff,
    )


def stock_level(sku: str, *, available: int, price: str = "10.00", version: int = 1, name: str = "") -> None:
    """Put a product in Orders' view the way StockLevelChanged does."""
    services.apply_stock_level(
        sku=sku, name=name or f"Product {sku}", price=Decimal(price), available=available, version=version
    )


def place(
    customer: AbstractBaseUser, *lines: tuple[str, int], token: str = "tok_visa", **kwargs: Any
) -> Order:
    requested = [services.LineRequest(sku=sku, quantity=quantity) for sku, quantity in lines]
    return services.place_order(customer=customer, lines=requested, payment_token=token, **kwargs).order


def envelope_for(event: Event, *, correlation_id: str, causation_id: str | None = None) -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()),
        type=event.type_name,
        source=f"/{event.context}",
        time=format_time(timezone.now()),
        data_version=event.contract_version,
        correlation_id=correlation_id,
        causation_id=causation_id,
    )


def deliver(handler: Any, event: Event, *, correlation_id: str, envelope: Envelope | None = None) -> Envelope:
    """Run a handler the way the consumer runner does: one transaction, in the event's scope."""
    envelope = envelope or envelope_for(event, correlation_id=correlation_id)
    with correlation_scope(envelope.correlation_id, envelope.id), transaction.atomic():
        handler(event, envelope)
    return envelope


def outbox_events(order: Order, event_type: str | None = None) -> list[OutboxRecord]:
    records = OutboxRecord.objects.filter(key=str(order.id)).order_by("id")
    return list(records.filter(event_type=event_type) if event_type else records)
