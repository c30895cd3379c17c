"""Celery entry points of the orders context: customer notifications.

Enqueued only through `transaction.on_commit` (orders/services/notifying.py). A task owns its retries:
mail server and database hiccups are retried with backoff; sending twice is prevented by the
Notification row the task claims (orders/notifications.py), not by Celery.
"""

import logging
import smtplib
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError

from .models import Notification
from .notifications import pending_notifications, send_notification

log = logging.getLogger(__name__)

TRANSIENT_ERRORS = (smtplib.SMTPException, OSError, DatabaseError)


@shared_task(
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=12,
    acks_late=True,
)
def send_notification_email(notification_id: int) -> str:
    try:
        return send_notification(notification_id=notification_id).value
    except Notification.DoesNotExist:
        # Its order is gone (or the task came from another database): nothing to send, no retry.
        log.warning("notification %s does not exist: nothing to send", notification_id)
        return "missing"


@shared_task
def enqueue_pending_notifications() -> int:
    """Periodic (celery beat): re-enqueue notifications whose task was lost. Sending stays once."""
    # Younger pending rows most likely still have their task on the way (enqueuing twice would
    # be harmless, only wasteful: sending is claimed once).
    ids = pending_notifications(older_than=timedelta(seconds=settings.ORDER_NOTIFICATION_GRACE_SECONDS))
    for notification_id in ids:
        send_notification_email.delay(notification_id)
    if ids:
        log.warning("re-enqueued %d pending notification(s)", len(ids))
    return len(ids)
