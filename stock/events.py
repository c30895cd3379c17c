"""Contracts the Stock context publishes on `stock.reservations` (key: order id) and
`stock.levels` (key: sku)."""

from decimal import Decimal
from uuid import UUID

from pydantic import Field

from backbone.contracts import Contract, Event


class ReservedLine(Contract):
    sku: str
    quantity: int = Field(gt=0)


class Shortage(Contract):
    sku: str
    requested: int
    available: int


class StockReserved(Event, topic="stock.reservations", key="order_id", version=1):
    order_id: UUID
    lines: tuple[ReservedLine, ...]


class StockReservationFailed(Event, topic="stock.reservations", key="order_id", version=1):
    order_id: UUID
    shortages: tuple[Shortage, ...]


class StockLevelChanged(Event, topic="stock.levels", key="sku", version=1):
    """The full current state of one sku (event-carried state transfer).

    `version` grows by one with every change of the sku, so a view applies an event only when
    it is newer than what it holds: duplicates, replays and rebuilds are harmless.
    """

    sku: str
    name: str
    price: Decimal
    on_hand: int
    reserved: int
    available: int
    version: int = Field(gt=0)


class StockReorderRequested(Event, topic="stock.levels", key="sku", version=1):
    """Available stock fell to or below the reorder point: buy more (once per crossing)."""

    sku: str
    available: int
    reorder_point: int
    reorder_quantity: int
