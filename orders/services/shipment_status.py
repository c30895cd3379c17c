"""Shipment status, kept from Shipments' events on confirmed orders (called by handlers)."""

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime

from django.db import connection, transaction

from backbone.aftercommit import call_on_commit

from ..models import NotificationKind, Order, OrderState, ShipmentStatus
from ..wakeups import publish_change
from .notifying import notify

log = logging.getLogger(__name__)


# Every ShipmentPrepared of a consumer batch in one statement: it only moves state and emits
# nothing, so a round trip (and an ORM read and save) per order is not needed. Confirmed
# orders only, and a dispatch already recorded is never walked back.
_PREPARE_ALL = f"""
    UPDATE {Order._meta.db_table} AS o
    SET shipment_status = %s, shipment_id = batch.shipment_id, updated_at = now()
    FROM unnest(%s::uuid[], %s::uuid[]) AS batch (order_id, shipment_id)
    WHERE o.id = batch.order_id AND o.state = %s AND o.shipment_status <> %s
    RETURNING o.id
"""


def record_shipments_prepared(prepared: Iterable[tuple[uuid.UUID, uuid.UUID]]) -> set[uuid.UUID]:
    """Record (order id, shipment id) pairs in one statement; the orders it changed. An order
    named twice takes its last shipment id, as it would one event at a time."""
    shipments = dict(prepared)
    if not shipments:
        return set()
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(
            _PREPARE_ALL,
            [
                ShipmentStatus.PREPARED,
                list(shipments),
                list(shipments.values()),
                OrderState.CONFIRMED,
                ShipmentStatus.DISPATCHED,
            ],
        )
        changed = {row[0] for row in cursor.fetchall()}
    for order_id in changed:
        call_on_commit(publish_change, order_id, description=f"wake-up of order {order_id}")
    for order_id in shipments.keys() - changed:
        log.warning(
            "ShipmentPrepared for order %s, which is not a confirmed undispatched order here: ignored",
            order_id,
        )
    return changed


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
