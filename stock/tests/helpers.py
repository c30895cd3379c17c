"""Helpers for the stock tests: products to work with, and an outbox emptied of the set-up's events."""

from decimal import Decimal

from outbox.models import OutboxRecord
from stock import services
from stock.models import StockLevel


def add_product(sku: str, *, on_hand: int, reorder_point: int = 0, reorder_quantity: int = 10) -> StockLevel:
    return services.register_product(
        sku=sku,
        name=f"Product {sku}",
        price=Decimal("9.50"),
        on_hand=on_hand,
        reorder_point=reorder_point,
        reorder_quantity=reorder_quantity,
    )


def level(sku: str) -> StockLevel:
    return StockLevel.objects.get(product_id=sku)


def forget_events() -> None:
    """Drop the set-up's events from the outbox, so a test sees only what it caused."""
    OutboxRecord.objects.all().delete()
