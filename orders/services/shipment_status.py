"""Shipment status, kept from Shipments' events on confirmed orders (called by handlers)."""

import logging
import uuid
from datetime import datetime

from django.db import transaction

from backbone.aftercommit import call_on_commit

from ..models import NotificationKind, Order, OrderState, ShipmentStatus
from ..wakeups import publish_change
from .notifying import notify

log = logging.getLogger(__name__)


def record_shipment_prepared(*, order_id: uuid.UUID, shipment_id: uuid.UUID) -> Order | None:
    with transaction.atomic(savepoint=False):
        order = _confirmed_order(order_id, "ShipmentPrepared")
        if order is None or order.shipment_status == ShipmentStatus.DISPATCHED:
            return None  # a dispatch already recorded is never walked back
        order.shipment_status = ShipmentStatus.PREPARED
        order.shipment_id = shipment_id
        order.save(update_fields=["shipment_status", "shipment_id", "updated_at"])
        call_on_commit(publish_change, order.id, description=f"wake-up of order {order.id}")
        return order


def record_shipment_dispatched(
    *,
    order_id: uuid.UUID,
    shipment_id: uuid.UUID,
    carrier: str,
    tracking_number: str,
    dispatched_at: datetime,
) -> Order | None:
    with transaction.atomic(savepoint=False):
        order = _confirmed_order(order_id, "ShipmentDispatched")
        if order is None or order.shipment_status == ShipmentStatus.DISPATCHED:
            return None
        order.shipment_status = ShipmentStatus.DISPATCHED
        order.shipment_id = shipment_id
        order.carrier = carrier
        order.tracking_number = tracking_number
        order.dispatched_at = dispatched_at
        order.save(
            update_fields=[
                "shipment_status",
                "shipment_id",
                "carrier",
                "tracking_number",
                "dispatched_at",
                "updated_at",
            ]
        )
        notify(order, NotificationKind.DISPATCH)
        call_on_commit(publish_change, order.id, description=f"wake-up of order {order.id}")
        return order


def _confirmed_order(order_id: uuid.UUID, event_name: str) -> Order | None:
    order = Order.objects.select_for_update().filter(id=order_id).first()
    if order is None or order.state != OrderState.CONFIRMED:
        log.warning("%s for order %s, which is %s here: ignored", event_name, order_id, order and order.state)
        return None
    return order
