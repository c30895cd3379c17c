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
        order = _transition(order_id=order_id, source=OrderState.REQUESTED, target=OrderState.VALIDATED)
        if order is not None:
            emit(
                events.OrderValidated(
                    order_id=order.id,
                    customer_id=order.customer_id,
                    total=order.total,
                    payment_token=order.payment_token,
                )
            )
            _forget_payment_token(order)
        return order


def _forget_payment_token(order: Order) -> None:
    """Once Payments has it (or the order ended before payment) Orders needs the token no more:
    a secret not kept is a secret that cannot leak from here."""
    if order.payment_token:  # a declined payment's rejection finds it forgotten already
        order.payment_token = ""
        order.save(update_fields=["payment_token"])


# Each reason ends the order from one state only: stock fails before payment is asked for.
_REJECTED_FROM: dict[RejectionReason, OrderState] = {
    RejectionReason.OUT_OF_STOCK: OrderState.REQUESTED,
    RejectionReason.PAYMENT_DECLINED: OrderState.VALIDATED,
}


def reject_order(*, order_id: uuid.UUID, reason: RejectionReason) -> Order | None:
    """The order ends unfulfilled; Stock releases whatever it reserved."""
    with transaction.atomic(savepoint=False):
        order = _transition(
            order_id=order_id, source=_REJECTED_FROM[reason], target=OrderState.REJECTED, reason=reason
        )
        if order is not None:
            emit(events.OrderRejected(order_id=order.id, reason=reason.value))
            _forget_payment_token(order)
        return order


def confirm_order(*, order_id: uuid.UUID) -> Order | None:
    """Paid: Stock commits the reservation, Shipments prepares, the customer gets an email."""
    with transaction.atomic(savepoint=False):
        order = _transition(order_id=order_id, source=OrderState.VALIDATED, target=OrderState.CONFIRMED)
        if order is not None:
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


def _transition(
    *, order_id: uuid.UUID, source: OrderState, target: OrderState, reason: str = ""
) -> Order | None:
    """Move the (locked) order from `source` to `target`; None, logged, for any other situation."""
    order = Order.objects.select_for_update().filter(id=order_id).first()
    if order is None:
        log.warning("order %s is unknown here: %s ignored", order_id, target.label)
        return None
    if order.state != source or not order.can_become(target):
        log.info("order %s is %s, not %s: move to %s ignored", order_id, order.state, source, target)
        return None
    order.state = target
    order.reason = reason
    order.save(update_fields=["state", "reason", "updated_at"])
    call_on_commit(publish_change, order.id, description=f"wake-up of order {order.id}")
    if target in (OrderState.CONFIRMED, OrderState.REJECTED):
        call_on_commit(observe_decision, target.value, order.created_at, description="decision metric")
    log.info("order %s is %s%s", order.id, target, f" ({reason})" if reason else "")
    return order
