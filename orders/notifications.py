"""Customer emails about an order, each sent at most once per order and kind.

The Notification row is written (pending) in the transaction that decided to notify. Sending
claims it: the row is locked, sent through Django's email backend and marked sent in one
transaction, so a redelivered event, a retried task or two workers racing send one email.
(If the process dies after the mail server accepted the message but before the commit, the
retry sends it again: the one window no database can close for an outside system.)
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone

from .models import Notification, NotificationKind, NotificationStatus, Order

log = logging.getLogger(__name__)


def send_notification(*, notification_id: int) -> NotificationStatus:
    """Send the email if nobody has; answers the notification's final status."""
    with transaction.atomic():
        notification = (
            Notification.objects.select_for_update(of=("self",))
            .select_related("order__customer")
            .get(id=notification_id)
        )
        if notification.status != NotificationStatus.PENDING:
            log.info("%s: already %s, not sent again", notification, notification.status)
            return NotificationStatus(notification.status)
        recipient = notification.order.customer.email
        if recipient:
            message = compose(notification.order, NotificationKind(notification.kind), recipient)
            message.send(fail_silently=False)
            notification.status = NotificationStatus.SENT
        else:
            notification.status = NotificationStatus.SKIPPED
        notification.recipient = recipient
        notification.sent_at = timezone.now()
        notification.save(update_fields=["status", "recipient", "sent_at"])
    log.info("%s to %s", notification, recipient or "nobody")
    return NotificationStatus(notification.status)


def pending_notifications(*, older_than: timedelta) -> list[int]:
    """Notifications whose task never ran (e.g. the process died right after the commit)."""
    cutoff = timezone.now() - older_than
    return list(
        Notification.objects.filter(status=NotificationStatus.PENDING, created_at__lt=cutoff)
        .order_by("created_at")
        .values_list("id", flat=True)[:500]
    )


def compose(order: Order, kind: NotificationKind, recipient: str) -> EmailMessage:
    reference = str(order.id)
    if kind == NotificationKind.CONFIRMATION:
        subject = f"Order {reference} confirmed"
        lines = "\n".join(
            f"  {line.quantity} x {line.name} ({line.sku}) at {line.unit_price}" for line in order.lines.all()
        )
        body = (
            f"Thank you for your order.\n\n{lines}\n\nTotal: {order.total}\n\n"
            "We will tell you when it ships.\n"
        )
    else:
        subject = f"Order {reference} dispatched"
        body = f"Your order is on its way with {order.carrier}.\n\nTracking number: {order.tracking_number}\n"
    return EmailMessage(
        subject=subject,
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[recipient],
        headers={"X-Order-Id": reference, "X-Notification-Kind": kind.value},
    )
