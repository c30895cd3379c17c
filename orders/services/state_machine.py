"""Moving an order along its state machine as Stock and Payments answer (called by handlers):
REQUESTED -> VALIDATED -> CONFIRMED, or REJECTED from the state the reason allows."""

import logging
import uuid

from django.db import transaction

from backbone.aftercommit import call_on_commit
from outbox.emit import emit

from .. import events
from ..metrics import observe_decision
from ..models import ALLOWED_TRANSITIONS, NotificationKind, Order, OrderState, RejectionReason
from ..wakeups import publish_change
from .notifying import notify
from .placing import contract_lines

log = logging.getLogger(__name__)


def validate_order(*, order_id: uuid.UUID) -> Order | None:
    """Stock is reserved: ask Payments to charge."""
    with transaction.atomic(savepoint=False):
        order = _move(
            order_id, source=OrderState.REQUESTED, target=OrderState.VALIDATED, forget_payment_token=True
        )
        if order is not None:
            emit(
                events.OrderValidated(
                    order_id=order.id,
                    customer_id=order.customer_id,
                    total=order.total,
                    payment_token=order.previous_payment_token,
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
        order = _move(
            order_id,
            source=_REJECTED_FROM[reason],
            target=OrderState.REJECTED,
            reason=reason,
            forget_payment_token=True,
        )
        if order is not None:
            emit(events.OrderRejected(order_id=order.id, reason=reason.value))
        return order


def confirm_order(*, order_id: uuid.UUID) -> Order | None:
    """Paid: Stock commits the reservation, Shipments prepares, the customer gets an email."""
    with transaction.atomic(savepoint=False):
        order = _move(order_id, source=OrderState.VALIDATED, target=OrderState.CONFIRMED)
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


# One statement moves the order and returns it: the subquery locks the row (so a concurrent
# move waits, then sees the state it committed) and keeps the token as it was before the
# UPDATE, which OrderValidated carries to Payments while the row forgets it.
_MOVE = """
    UPDATE orders_order AS o
    SET state = %s, reason = %s, updated_at = now(),
        payment_token = CASE WHEN %s THEN '' ELSE o.payment_token END
    FROM (SELECT id, payment_token FROM orders_order WHERE id = %s FOR UPDATE) AS previous
    WHERE o.id = previous.id AND o.state = %s
    RETURNING o.*, previous.payment_token AS previous_payment_token
"""


def _move(
    order_id: uuid.UUID,
    *,
    source: OrderState,
    target: OrderState,
    reason: str = "",
    forget_payment_token: bool = False,
) -> Order | None:
    """Move the order from `source` to `target` in one UPDATE: the order as it is now, or None
    (logged) when it is unknown or not in `source`. Once Payments has the token (or the order
    ended before payment) Orders needs it no more: a secret not kept cannot leak from here.
    The order's `previous_payment_token` is the token it had before this move."""
    if target not in ALLOWED_TRANSITIONS[source]:
        raise ValueError(f"an order never moves from {source} to {target}")
    moved = list(Order.objects.raw(_MOVE, [target, reason, forget_payment_token, order_id, source]))
    if not moved:
        _log_not_moved(order_id, source=source, target=target)
        return None
    order = moved[0]
    call_on_commit(publish_change, order.id, target.value, description=f"wake-up of order {order.id}")
    if target in (OrderState.CONFIRMED, OrderState.REJECTED):
        call_on_commit(observe_decision, target.value, order.created_at, description="decision metric")
    log.info("order %s is %s%s", order.id, target, f" ({reason})" if reason else "")
    return order


def _log_not_moved(order_id: uuid.UUID, *, source: OrderState, target: OrderState) -> None:
    state = Order.objects.filter(id=order_id).values_list("state", flat=True).first()
    if state is None:
        log.warning("order %s is unknown here: %s ignored", order_id, target.label)
    else:
        log.info("order %s is %s, not %s: move to %s ignored", order_id, state, source, target)
