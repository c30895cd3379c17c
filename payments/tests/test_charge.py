"""Charging an order: once per order, whatever the deliveries; declined cards fail the payment."""

import uuid
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from backbone import testing
from backbone.envelope import Envelope
from backbone.subscriptions import subscriptions
from orders.events import OrderValidated
from outbox.models import OutboxRecord
from outbox.testing import emitted
from payments import handlers, services
from payments.events import PaymentFailed, PaymentProcessed
from payments.gateway import Charge, GatewayUnavailable, PaymentGateway, SimulatedGateway, get_gateway
from payments.models import Payment, PaymentAttempt


class RecordingGateway(PaymentGateway):
    """The simulated gateway, counting the calls made to it (a fake of the same port)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._simulated = SimulatedGateway()

    def charge(self, *, idempotency_key: str, amount: Decimal, token: str) -> Charge:
        self.calls.append(idempotency_key)
        return self._simulated.charge(idempotency_key=idempotency_key, amount=amount, token=token)


class BrokenGateway(PaymentGateway):
    def charge(self, *, idempotency_key: str, amount: Decimal, token: str) -> Charge:
        raise GatewayUnavailable("connection reset")


def validated(order_id: uuid.UUID, *, token: str = "tok_visa", total: str = "42.50") -> OrderValidated:
    return OrderValidated(order_id=order_id, customer_id=7, total=Decimal(total), payment_token=token)


def deliver(event: OrderValidated) -> Envelope:
    return testing.deliver(handlers.on_order_validated, event)


@pytest.mark.django_db
def test_an_approved_charge_processes_the_payment() -> None:
    order_id = uuid.uuid4()

    envelope = deliver(validated(order_id))

    payment = Payment.objects.get(order_id=order_id)
    assert (payment.state, payment.amount) == (Payment.State.PROCESSED, Decimal("42.50"))
    assert payment.gateway_reference.startswith("sim_")
    [attempt] = payment.attempts.all()
    assert (attempt.idempotency_key, attempt.outcome) == (str(order_id), PaymentAttempt.Outcome.APPROVED)
    assert emitted(PaymentProcessed) == [
        PaymentProcessed(order_id=order_id, payment_id=payment.id, amount=Decimal("42.50"))
    ]
    assert emitted(PaymentFailed) == []
    assert OutboxRecord.objects.get().causation_id == envelope.id


@pytest.mark.django_db
def test_a_declined_card_fails_the_payment() -> None:
    order_id = uuid.uuid4()

    deliver(validated(order_id, token="tok_declined"))

    payment = Payment.objects.get(order_id=order_id)
    assert (payment.state, payment.failure_reason) == (Payment.State.FAILED, "card_declined")
    assert payment.attempts.get().outcome == PaymentAttempt.Outcome.DECLINED
    assert emitted(PaymentFailed) == [
        PaymentFailed(
            order_id=order_id, payment_id=payment.id, amount=Decimal("42.50"), reason="card_declined"
        )
    ]
    assert emitted(PaymentProcessed) == []


@pytest.mark.django_db
@pytest.mark.parametrize("token", ["tok_visa", "tok_declined"])
def test_a_redelivered_order_is_not_charged_again(token: str) -> None:
    gateway = RecordingGateway()
    order_id = uuid.uuid4()

    first = services.charge_order(
        order_id=order_id, amount=Decimal("10.00"), payment_token=token, gateway=gateway
    )
    second = services.charge_order(
        order_id=order_id, amount=Decimal("10.00"), payment_token=token, gateway=gateway
    )

    assert first.pk == second.pk
    assert gateway.calls == [str(order_id)]
    assert PaymentAttempt.objects.count() == 1
    assert OutboxRecord.objects.count() == 1


@pytest.mark.django_db
def test_the_handler_charges_through_the_configured_gateway() -> None:
    order_id = uuid.uuid4()
    gateway = get_gateway()
    assert isinstance(gateway, SimulatedGateway)

    with override_settings(PAYMENT_GATEWAY="payments.tests.test_charge.RecordingGateway"):
        deliver(validated(order_id))
        deliver(validated(order_id))  # the same order again, as a replay would bring it
        recording = get_gateway()

    assert isinstance(recording, RecordingGateway)
    assert recording.calls == [str(order_id)]
    assert Payment.objects.get(order_id=order_id).attempts.get().gateway == "RecordingGateway"


@pytest.mark.django_db
def test_an_unreachable_gateway_leaves_nothing_behind_so_the_consumer_retries() -> None:
    order_id = uuid.uuid4()

    with pytest.raises(GatewayUnavailable), transaction.atomic():
        services.charge_order(
            order_id=order_id, amount=Decimal("10.00"), payment_token="tok_visa", gateway=BrokenGateway()
        )

    assert not Payment.objects.exists()
    assert not OutboxRecord.objects.exists()
    services.charge_order(order_id=order_id, amount=Decimal("10.00"), payment_token="tok_visa")
    assert Payment.objects.get(order_id=order_id).state == Payment.State.PROCESSED


def test_the_simulated_gateway_answers_the_same_for_the_same_key() -> None:
    gateway = SimulatedGateway()

    first = gateway.charge(idempotency_key="order-1", amount=Decimal("5"), token="tok_visa")
    again = gateway.charge(idempotency_key="order-1", amount=Decimal("5"), token="tok_visa")
    other = gateway.charge(idempotency_key="order-2", amount=Decimal("5"), token="tok_visa")

    assert first == again
    assert first.approved
    assert other.reference != first.reference
    assert gateway.charge(idempotency_key="order-3", amount=Decimal("0"), token="tok_visa").approved is False


def test_routing_table_is_what_the_consumer_runner_sees() -> None:
    registered = subscriptions.for_context("payments")

    assert {type_name: [sub.handler for sub in subs] for type_name, subs in registered.items()} == {
        event_type.type_name: [handler] for event_type, handler in handlers.ROUTES.items()
    }
    assert handlers.REBUILDABLE_VIEWS == []


@pytest.mark.django_db(transaction=True)
def test_the_same_order_delivered_to_two_consumers_at_once_is_charged_once() -> None:
    gateway = RecordingGateway()
    order_id = uuid.uuid4()

    def charge() -> Payment:
        return services.charge_order(
            order_id=order_id, amount=Decimal("10.00"), payment_token="tok_visa", gateway=gateway
        )

    testing.run_together([charge] * 6, timeout=60)

    assert gateway.calls == [str(order_id)]
    assert PaymentAttempt.objects.count() == 1
    assert len(emitted(PaymentProcessed)) == 1


@pytest.mark.django_db
def test_charging_joins_the_batch_transaction_without_savepoints() -> None:
    order_id = uuid.uuid4()

    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        for event in (validated(order_id), validated(order_id)):
            handlers.on_order_validated(event, testing.envelope_for(event))

    assert [query["sql"] for query in queries.captured_queries if "SAVEPOINT" in query["sql"]] == []
    assert Payment.objects.get(order_id=order_id).state == Payment.State.PROCESSED


@pytest.mark.django_db
def test_a_charge_writes_its_attempt_once_with_the_answer() -> None:
    order_id = uuid.uuid4()

    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        handlers.on_order_validated(validated(order_id), testing.envelope_for(validated(order_id)))

    attempt_statements = [
        query["sql"] for query in queries.captured_queries if "payments_paymentattempt" in query["sql"]
    ]
    assert len(attempt_statements) == 1
    attempt = Payment.objects.get(order_id=order_id).attempts.get()
    assert (attempt.outcome, attempt.answered_at is not None) == (PaymentAttempt.Outcome.APPROVED, True)
