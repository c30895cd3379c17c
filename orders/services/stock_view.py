"""Orders' view of stock levels, kept from Stock's `StockLevelChanged` events."""

from decimal import Decimal

from backbone.versioned import apply_if_newer

from ..models import StockLevelView


def apply_stock_level(*, sku: str, name: str, price: Decimal, available: int, version: int) -> bool:
    """Apply a `StockLevelChanged` if it is newer than the view's row; True when it was."""
    return apply_if_newer(
        StockLevelView,
        lookup={"sku": sku},
        version=version,
        values={"name": name, "price": price, "available": available},
    )
