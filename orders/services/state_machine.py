"""Moving an order along its state machine as Stock and Payments answer (called by handlers):
REQUESTED -> VALIDATED -> CONFIRMED, or REJECTED from the state the reason allows."""

import logging
import uuid

from django.db import transaction

from backbone.aftercommit import call_on_commit
from outbox.emit import emit

from .. import events
from ..metrics import observe_decision
from ..models import NotificationKind, Order, OrderState, RejectionReason
from ..wakeups import publish_change
from .notifying import notify
from .placing import contract_lines

log = logging.getLogger(__name__)


def validate_order(*, order_id: uuid.UUID) -> Order | None:
    """Stock is reserved: ask Payments to charge."""
    with transaction.atomic(savepoint=False):
        order = _locked(order_id=order_id, source=OrderState.REQUESTED, target=OrderState.VALIDATED)
        if order is not None:
            payment_token = order.payment_token
            _move(order, OrderState.VALIDATED, forget_payment_token=True)
            emit(
                events.OrderValidated(
                    order_id=order.id,
                    customer_id=order.customer_id,
                    total=order.total,
                    payment_token=payment_token,
                )
            )
        return order


# Each reason ends the order from one state only: stock fails before payment is asked for.
_REJECTED_FROM: dict[RejectionReason, OrderState] = {
    RejectionReason.OUT_OF_STOCK: OrderState.REQUESTED,
    RejectionReason.PAYMENT_DECLINED: OrderState.VALIDATED,
}


def reject_order(*, order_id: uuid.UUID, reason: RejectionReason) -> Order | None:
    """The order ends unfulfilled; Stock releases whatever it reserved."""
    with transaction.atomic(savepoint=False):
        order = _locked(order_id=order_id, source=_REJECTED_FROM[reason], target=OrderState.REJECTED)
        if order is not None:
            _move(order, OrderState.REJECTED, reason=reason, forget_payment_token=True)
            emit(events.OrderRejected(order_id=order.id, reason=reason.value))
        return order


def confirm_order(*, order_id: uuid.UUID) -> Order | None:
    """Paid: Stock commits the reservation, Shipments prepares, the customer gets an email."""
    with transaction.atomic(savepoint=False):
        order = _locked(order_id=order_id, source=OrderState.VALIDATED, target=OrderState.CONFIRMED)
        if order is not None:
            _move(order, OrderState.CONFIRMED)
            emit(
                events.OrderConfirmed(
                    order_id=order.id,
                    customer_id=order.customer_id,
                    lines=contract_lines(order.lines.all()),
                    total=order.total,
                )
            )
            notify(order, NotificationKind.CONFIRMATION)
        return order


def _locked(*, order_id: uuid.UUID, source: OrderState, target: OrderState) -> Order | None:
    """The order, locked, if it can move from `source` to `target`; None, logged, otherwise."""
    order = Order.objects.select_for_update().filter(id=order_id).first()
    if order is None:
        log.warning("order %s is unknown here: %s ignored", order_id, target.label)
        return None
    if order.state != source or not order.can_become(target):
        log.info("order %s is %s, not %s: move to %s ignored", order_id, order.state, source, target)
        return None
    return order


def _move(order: Order, target: OrderState, *, reason: str = "", forget_payment_token: bool = False) -> None:
    """Save the new state in one UPDATE. Once Payments has the token (or the order ended before
    payment) Orders needs it no more: a secret not kept is a secret that cannot leak from here."""
    order.state = target
    order.reason = reason
    fields = ["state", "reason", "updated_at"]
    if forget_payment_token and order.payment_token:  # a declined payment's is forgotten already
        order.payment_token = ""
        fields.append("payment_token")
    order.save(update_fields=fields)
    call_on_commit(publish_change, order.id, description=f"wake-up of order {order.id}")
    if target in (OrderState.CONFIRMED, OrderState.REJECTED):
        call_on_commit(observe_decision, target.value, order.created_at, description="decision metric")
    log.info("order %s is %s%s", order.id, target, f" ({reason})" if reason else "")
