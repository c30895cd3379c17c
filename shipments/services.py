"""The write path of the shipments context: prepare a shipment per confirmed order, dispatch it.

`prepare_shipment`, which the handler calls, opens `transaction.atomic(savepoint=False)`: it
joins the consumer runner's batch transaction without a savepoint per event (a failure rolls
back the batch, which the runner retries), and is a transaction of its own elsewhere.
"""

import logging
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backbone import tracing
from backbone.correlation import correlation_scope, current_correlation_id
from backbone.versioned import insert_if_absent
from outbox.emit import emit

from .events import ShipmentDispatched, ShipmentPrepared
from .models import Shipment, ShipmentLine

log = logging.getLogger(__name__)


class ShippedLine(Protocol):
    """What goes into the parcel; OrderConfirmed's lines fit."""

    @property
    def sku(self) -> str: ...

    @property
    def quantity(self) -> int: ...


class ShipmentAlreadyDispatched(Exception):
    """Dispatching is done once: the parcel has left, with its carrier and tracking number."""

    def __init__(self, shipment: Shipment) -> None:
        super().__init__(
            f"shipment {shipment.id} was already dispatched at {shipment.dispatched_at:%Y-%m-%d %H:%M:%S}"
        )
        self.shipment = shipment


def prepare_shipment(*, order_id: UUID, customer_id: int, lines: Iterable[ShippedLine]) -> Shipment:
    """Prepare the shipment of a confirmed order and emit ShipmentPrepared.

    Idempotent per order: a second call returns the existing shipment and emits nothing.
    """
    quantities: Counter[str] = Counter()
    for line in lines:
        quantities[line.sku] += line.quantity
    with transaction.atomic(savepoint=False):
        # A concurrent call for the same order waits on the unique order id, then finds this one.
        shipment = Shipment(
            order_id=order_id,
            customer_id=customer_id,
            prepared_at=timezone.now(),
            correlation_id=current_correlation_id() or "",
        )
        if not insert_if_absent(shipment, unique_fields=["order_id"]):
            existing = Shipment.objects.get(order_id=order_id)
            log.info("order %s already has shipment %s; nothing to prepare", order_id, existing.id)
            return existing
        ShipmentLine.objects.bulk_create(
            ShipmentLine(shipment=shipment, sku=sku, quantity=quantity)
            for sku, quantity in sorted(quantities.items())
        )
        prepared = emit(ShipmentPrepared(order_id=order_id, shipment_id=shipment.id))
        shipment.correlation_id = prepared.correlation_id
        shipment.prepared_event_id = prepared.id
        shipment.prepared_traceparent = prepared.traceparent or ""
        shipment.save(update_fields=["correlation_id", "prepared_event_id", "prepared_traceparent"])
    log.info("order %s: shipment %s prepared", order_id, shipment.id)
    return shipment


def dispatch_shipment(*, shipment_id: UUID, carrier: str | None = None) -> Shipment:
    """Hand the parcel to a carrier and emit ShipmentDispatched.

    Dispatching twice is refused with ShipmentAlreadyDispatched rather than ignored: the
    caller (a staff member, the API answers 409) learns that the parcel left already, and the
    first dispatch's carrier and tracking number stay the only ones. Raises
    Shipment.DoesNotExist for an unknown id.
    """
    with transaction.atomic():
        # Locked, so a staff dispatch and the periodic one cannot both win.
        shipment = Shipment.objects.select_for_update().get(pk=shipment_id)
        if shipment.state == Shipment.State.DISPATCHED:
            raise ShipmentAlreadyDispatched(shipment)
        shipment.state = Shipment.State.DISPATCHED
        shipment.carrier = carrier or settings.SHIPMENT_CARRIER
        shipment.tracking_number = _new_tracking_number()
        shipment.dispatched_at = timezone.now()
        shipment.save(update_fields=["state", "carrier", "tracking_number", "dispatched_at"])
        # A staff request or the periodic task triggers it, but the dispatch belongs to the
        # order's story: it continues the shipment's correlation, caused by its preparation.
        with (
            correlation_scope(
                shipment.correlation_id or None, causation_id=shipment.prepared_event_id or None
            ),
            tracing.span_scope(
                "dispatch shipment",
                tracing.parse(shipment.prepared_traceparent) or tracing.current_traceparent(),
                kind="internal",
            ),
        ):
            emit(
                ShipmentDispatched(
                    order_id=shipment.order_id,
                    shipment_id=shipment.id,
                    carrier=shipment.carrier,
                    tracking_number=shipment.tracking_number,
                    dispatched_at=shipment.dispatched_at,
                )
            )
    log.info("shipment %s dispatched with %s (%s)", shipment.id, shipment.carrier, shipment.tracking_number)
    return shipment


def shipments_due(*, prepared_before: datetime, limit: int) -> list[UUID]:
    """Ids of the prepared shipments waiting since before `prepared_before`, oldest first."""
    waiting = Shipment.objects.filter(state=Shipment.State.PREPARED, prepared_at__lt=prepared_before)
    return list(waiting.order_by("prepared_at").values_list("id", flat=True)[:limit])


def _new_tracking_number() -> str:
    return f"TRK{uuid.uuid4().hex[:16].upper()}"
