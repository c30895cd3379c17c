"""The write path of the payments context: charge an order once, and say how it went."""

import logging
from decimal import Decimal
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from backbone.versioned import insert_if_absent
from outbox.emit import emit

from .events import PaymentFailed, PaymentProcessed
from .gateway import Charge, PaymentGateway, get_gateway
from .models import Payment, PaymentAttempt

log = logging.getLogger(__name__)


def charge_order(
    *, order_id: UUID, amount: Decimal, payment_token: str, gateway: PaymentGateway | None = None
) -> Payment:
    """Charge the order's amount once; emit PaymentProcessed or PaymentFailed.

    Idempotent per order: when the order's payment is already decided, the gateway is not
    called again and nothing is emitted. `gateway` defaults to the configured adapter.

    Where the gateway call sits, and why no delivery of OrderValidated charges twice:
    the gateway is an outside side effect that cannot join our transaction, so the call is
    made only after this order's payment row is claimed (inserted; it is unique per order),
    with the order id as idempotency key; the attempt is recorded with the gateway's answer in
    the same transaction (one INSERT: a row written before the call would be seen by nobody
    before the commit either).
    - Redelivered or replayed after our commit: the payment is decided; no call.
    - Delivered twice at once (a rebalance hands the partition to a second consumer while
      the first still waits for the gateway): the second waits on the payment row's unique
      key, then finds it decided; no call.
    - A crash after the gateway charged but before our commit, or a rollback of the consumer's
      batch because another event in it failed: none of our rows survive and the event is
      handled again, so we call again - with the same idempotency key, and the gateway
      answers with the charge it already made instead of charging a second time. That window
      is why the key is the order id and not a fresh value per attempt.
    A gateway without idempotency keys would need two steps instead: commit the attempt,
    call, record the answer in a second transaction, and reconcile attempts left without one.
    The price of calling inside the transaction is that a slow gateway holds the payments
    consumer's transaction open; only payments wait, as each context has its own consumer.
    """
    gateway = gateway or get_gateway()
    # savepoint=False: inside the consumer runner's batch transaction a failure rolls back the
    # batch, which the runner retries; a savepoint per event would only cost round trips.
    with transaction.atomic(savepoint=False):
        payment = Payment(order_id=order_id, amount=amount)
        if not insert_if_absent(payment, unique_fields=["order_id"]):
            decided = Payment.objects.get(order_id=order_id)
            log.info("order %s is already charged (%s); not charging again", order_id, decided.state)
            return decided
        idempotency_key = str(order_id)
        # GatewayUnavailable propagates: the transaction rolls back and the consumer retries.
        charge = gateway.charge(idempotency_key=idempotency_key, amount=amount, token=payment_token)
        _record_attempt(payment, charge, idempotency_key=idempotency_key, gateway=gateway)
        _decide(payment, charge)
    return payment


def _record_attempt(
    payment: Payment, charge: Charge, *, idempotency_key: str, gateway: PaymentGateway
) -> None:
    PaymentAttempt.objects.create(
        payment=payment,
        idempotency_key=idempotency_key,
        amount=payment.amount,
        gateway=type(gateway).__name__,
        outcome=PaymentAttempt.Outcome.APPROVED if charge.approved else PaymentAttempt.Outcome.DECLINED,
        gateway_reference=charge.reference,
        decline_reason=charge.decline_reason,
        answered_at=timezone.now(),
    )


def _decide(payment: Payment, charge: Charge) -> None:
    payment.gateway_reference = charge.reference
    if charge.approved:
        payment.state = Payment.State.PROCESSED
        emit(PaymentProcessed(order_id=payment.order_id, payment_id=payment.id, amount=payment.amount))
        log.info("order %s: %s charged (%s)", payment.order_id, payment.amount, charge.reference)
    else:
        payment.state = Payment.State.FAILED
        payment.failure_reason = charge.decline_reason
        emit(
            PaymentFailed(
                order_id=payment.order_id,
                payment_id=payment.id,
                amount=payment.amount,
                reason=charge.decline_reason,
            )
        )
        log.info("order %s: payment declined (%s)", payment.order_id, charge.decline_reason)
    payment.save(update_fields=["state", "gateway_reference", "failure_reason", "updated_at"])
