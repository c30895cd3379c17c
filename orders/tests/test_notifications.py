"""Customer emails: sent through Django's email backend, once per order and kind."""

import smtplib
from datetime import timedelta
from unittest import mock

import pytest
from django.core import mail
from django.utils import timezone

from backbone.testing import run_together
from orders import tasks
from orders.models import Notification, NotificationKind, NotificationStatus, Order, OrderState
from orders.notifications import send_notification
from orders.tests.factories import make_user, place, stock_level

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _locmem_email(settings) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def confirmed_order(email: str | None = None) -> Order:
    stock_level("KB-1", available=10, price="89.00", name="Keyboard")
    order = place(make_user(f"user-{Order.objects.count()}", email=email), ("KB-1", 2))
    Order.objects.filter(id=order.id).update(state=OrderState.CONFIRMED)
    return order


def test_confirmation_is_sent_once() -> None:
    order = confirmed_order()
    notification = Notification.objects.create(order=order, kind=NotificationKind.CONFIRMATION)

    assert send_notification(notification_id=notification.id) == NotificationStatus.SENT
    assert send_notification(notification_id=notification.id) == NotificationStatus.SENT  # a retried task

    [message] = mail.outbox
    assert message.to == [order.customer.email]
    assert message.subject == f"Order {order.id} confirmed"
    assert "2 x Keyboard (KB-1) at 89.00" in message.body
    assert "Total: 178.00" in message.body
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.SENT
    assert notification.sent_at is not None
    assert notification.recipient == order.customer.email


def test_dispatch_email_names_the_carrier_and_tracking_number() -> None:
    order = confirmed_order()
    Order.objects.filter(id=order.id).update(carrier="Parcel Co", tracking_number="PC42")
    notification = Notification.objects.create(order=order, kind=NotificationKind.DISPATCH)

    send_notification(notification_id=notification.id)

    [message] = mail.outbox
    assert message.subject == f"Order {order.id} dispatched"
    assert "Parcel Co" in message.body
    assert "PC42" in message.body


def test_a_customer_without_an_address_is_skipped_not_retried() -> None:
    order = confirmed_order(email="")
    notification = Notification.objects.create(order=order, kind=NotificationKind.CONFIRMATION)

    assert send_notification(notification_id=notification.id) == NotificationStatus.SKIPPED
    assert mail.outbox == []


def test_a_failed_send_stays_pending_for_the_retry() -> None:
    order = confirmed_order()
    notification = Notification.objects.create(order=order, kind=NotificationKind.CONFIRMATION)

    with (
        mock.patch("django.core.mail.EmailMessage.send", side_effect=smtplib.SMTPServerDisconnected("gone")),
        pytest.raises(smtplib.SMTPServerDisconnected),
    ):
        send_notification(notification_id=notification.id)

    notification.refresh_from_db()
    assert notification.status == NotificationStatus.PENDING
    assert send_notification(notification_id=notification.id) == NotificationStatus.SENT
    assert len(mail.outbox) == 1


def test_the_task_retries_transient_errors_itself() -> None:
    assert smtplib.SMTPException in tasks.send_notification_email.autoretry_for
    assert OSError in tasks.send_notification_email.autoretry_for
    assert tasks.send_notification_email.max_retries >= 5


@pytest.mark.django_db(transaction=True)
def test_racing_tasks_send_one_email() -> None:
    order = confirmed_order()
    notification = Notification.objects.create(order=order, kind=NotificationKind.CONFIRMATION)

    def run() -> NotificationStatus:
        return send_notification(notification_id=notification.id)

    outcomes = run_together([run] * 6, timeout=30)

    assert outcomes == [NotificationStatus.SENT] * 6
    assert len(mail.outbox) == 1


def test_lost_tasks_are_enqueued_again() -> None:
    order = confirmed_order()
    old = Notification.objects.create(order=order, kind=NotificationKind.CONFIRMATION)
    Notification.objects.filter(id=old.id).update(created_at=timezone.now() - timedelta(minutes=10))
    Notification.objects.create(order=order, kind=NotificationKind.DISPATCH)  # young: its task is on its way

    with mock.patch.object(tasks.send_notification_email, "delay") as enqueue:
        assert tasks.enqueue_pending_notifications() == 1

    enqueue.assert_called_once_with(old.id)


def test_a_task_for_a_vanished_notification_sends_nothing() -> None:
    assert tasks.send_notification_email(notification_id=987654) == "missing"
    assert mail.outbox == []
