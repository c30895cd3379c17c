"""Helpers for the stock tests: products to work with, and the events Stock left in the outbox."""

from decimal import Decimal
from typing import Any

from backbone.contracts import Event
from outbox.models import OutboxRecord
from stock import services
from stock.models import StockLevel


def emitted(event_type: type[Event]) -> list[dict[str, Any]]:
    """Payloads of the outbox rows of one event type, oldest first."""
    rows = OutboxRecord.objects.filter(event_type=event_type.type_name).order_by("id")
    return [row.payload for row in rows]


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
