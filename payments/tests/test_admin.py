"""The admin shows payments and their gateway attempts, read-only."""

import uuid
from decimal import Decimal

import pytest
from django.test import Client

from payments import services
from payments.models import Payment

pytestmark = pytest.mark.django_db


def test_payments_and_attempts_are_shown_read_only(admin_client: Client) -> None:
    order_id = uuid.uuid4()
    services.charge_order(order_id=order_id, amount=Decimal("12.00"), payment_token="tok_declined")
    payment = Payment.objects.get()

    listing = admin_client.get("/admin/payments/payment/")
    page = admin_client.get(f"/admin/payments/payment/{payment.pk}/change/")

    assert listing.status_code == 200
    assert str(order_id) in listing.content.decode()
    assert page.status_code == 200
    assert "card_declined" in page.content.decode()
    assert admin_client.get("/admin/payments/paymentattempt/").status_code == 200
    assert admin_client.get("/admin/payments/payment/add/").status_code == 403
    assert (
        admin_client.post(f"/admin/payments/payment/{payment.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    assert Payment.objects.filter(pk=payment.pk).exists()
