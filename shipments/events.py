"""Contracts the Shipments context publishes on topic `shipments` (key: the order id)."""

from datetime import datetime
from uuid import UUID

from backbone.contracts import Event


class ShipmentPrepared(Event, topic="shipments", key="order_id", version=1):
    order_id: UUID
    shipment_id: UUID


class ShipmentDispatched(Event, topic="shipments", key="order_id", version=1):
    order_id: UUID
    shipment_id: UUID
    carrier: str
    tracking_number: str
    dispatched_at: datetime
