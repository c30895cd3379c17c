"""The customer emails a state change decides: recorded in its transaction, sent after it."""

from backbone.aftercommit import enqueue_on_commit
from backbone.versioned import insert_if_absent

from ..models import Notification, NotificationKind, Order
from ..tasks import send_notification_email


def notify(order: Order, kind: NotificationKind) -> None:
    """Record the intent with the state change; the task sends it after commit, once."""
    notification = Notification(order=order, kind=kind)
    if insert_if_absent(notification, unique_fields=["order", "kind"]):
        enqueue_on_commit(send_notification_email, notification.id)
