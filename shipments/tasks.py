"""Celery tasks of the shipments context: entrypoints, like the API; the work is in services."""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from . import services

log = logging.getLogger(__name__)

BATCH_SIZE = 200


@shared_task
def dispatch_due_shipments() -> int:
    """Dispatch the shipments prepared more than SHIPMENT_AUTO_DISPATCH_SECONDS ago.

    Run by Celery beat (CELERY_BEAT_SCHEDULE). Each shipment is dispatched in its own
    transaction, so one failure does not undo the others; a backlog larger than one batch is
    taken by the next runs. Returns how many shipments this run dispatched.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.SHIPMENT_AUTO_DISPATCH_SECONDS)
    dispatched = 0
    for shipment_id in services.shipments_due(prepared_before=cutoff, limit=BATCH_SIZE):
        try:
            services.dispatch_shipment(shipment_id=shipment_id)
        except services.ShipmentAlreadyDispatched:
            continue  # a staff member dispatched it a moment ago
        dispatched += 1
    if dispatched:
        log.info("dispatched %d shipment(s) prepared before %s", dispatched, cutoff.isoformat())
    return dispatched
