"""Small builders for the orders tests: users, catalog rows and event deliveries."""

from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser

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


def outbox_events(order: Order, event_type: str | None = None) -> list[OutboxRecord]:
    records = OutboxRecord.objects.filter(key=str(order.id)).order_by("id")
    return list(records.filter(event_type=event_type) if event_type else records)
