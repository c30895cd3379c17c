"""Payments under the real consumer runner: OrderValidated on Kafka, `manage.py consume payments`."""

import uuid
from decimal import Decimal

import pytest

from backbone.kafka import group_id
from backbone.tests.consumer_probe import consume_until_idle, send_event, start_group_at_end
from orders.events import OrderValidated
from outbox.models import OutboxRecord
from payments.events import PaymentFailed, PaymentProcessed
from payments.models import Payment, PaymentAttempt

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_payments_consumer_charges_each_order_once(kafka_topics: list[str]) -> None:
    start_group_at_end(group_id("payments"), ("orders",))
    paid, declined = uuid.uuid4(), uuid.uuid4()
    validated = OrderValidated(order_id=paid, customer_id=7, total=Decimal("19.00"), payment_token="tok_visa")
    first = send_event(validated, flush=False)
    send_event(validated, flush=False)  # a second delivery with its own ce_id, as a replay brings it
    send_event(
        OrderValidated(order_id=declined, customer_id=7, total=Decimal("5.00"), payment_token="tok_declined")
    )

    consumer = consume_until_idle("payments")

    assert consumer.returncode == 0, consumer.stderr[-2000:]
    assert dict(Payment.objects.values_list("order_id", "state")) == {paid: "processed", declined: "failed"}
    assert PaymentAttempt.objects.filter(payment__order_id=paid).count() == 1
    processed = OutboxRecord.objects.get(event_type=PaymentProcessed.type_name)
    assert (processed.key, processed.causation_id) == (str(paid), first.id)
    assert OutboxRecord.objects.get(event_type=PaymentFailed.type_name).payload["reason"] == "card_declined"
