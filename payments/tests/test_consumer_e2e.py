"""Payments under the real consumer runner: OrderValidated on Kafka, `manage.py consume payments`."""

import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings

from backbone.failpoints import EXIT_CODE
from backbone.kafka import group_id
from backbone.tests.consumer_probe import consume_until_idle, send_event, start_group_at_end, subprocess_env
from orders.events import OrderValidated
from outbox.models import OutboxRecord
from payments.events import PaymentFailed, PaymentProcessed
from payments.models import Payment, PaymentAttempt
from payments.tests.ledger_gateway import CRASH_AFTER_CHARGE, read_ledger

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


def _consume_payments(ledger: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "consume", "payments", "--once", "--idle-exit", "60"],
        cwd=settings.BASE_DIR,
        env=subprocess_env(
            "payments",
            PAYMENT_GATEWAY="payments.tests.ledger_gateway.LedgerGateway",
            PAYMENT_LEDGER=str(ledger),
            **env,
        ),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_a_consumer_that_dies_after_the_gateway_charged_does_not_charge_again(
    kafka_topics: list[str], tmp_path: Path
) -> None:
    start_group_at_end(group_id("payments"), ("orders",))
    order_id = uuid.uuid4()
    send_event(
        OrderValidated(order_id=order_id, customer_id=7, total=Decimal("31.00"), payment_token="tok_visa")
    )
    ledger = tmp_path / "ledger.jsonl"

    crashed = _consume_payments(ledger, **{CRASH_AFTER_CHARGE: "1"})

    assert crashed.returncode == EXIT_CODE, crashed.stderr[-2000:]
    assert not Payment.objects.exists()  # the card is charged, our transaction never committed
    [charge] = read_ledger(ledger)

    restarted = _consume_payments(ledger)  # OrderValidated again: its offset was never committed

    assert restarted.returncode == 0, restarted.stderr[-2000:]
    calls = read_ledger(ledger)
    assert [call["charged"] for call in calls] == [True, False]  # the card was charged once
    assert [call["key"] for call in calls] == [str(order_id)] * 2  # asked again, with the same key
    payment = Payment.objects.get(order_id=order_id)
    assert (payment.state, payment.gateway_reference) == (Payment.State.PROCESSED, charge["reference"])
    assert OutboxRecord.objects.filter(event_type=PaymentProcessed.type_name, key=str(order_id)).count() == 1
