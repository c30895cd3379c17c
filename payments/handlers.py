"""How Payments reacts to the orders it hears about. Each handler runs in the consumer's
transaction (with the inbox row and the event's correlation scope) and calls one service."""

from django.db.models import Model

from backbone.contracts import Event
from backbone.envelope import Envelope
from backbone.subscriptions import Handler, subscribe
from orders.events import OrderValidated

from . import services


@subscribe(OrderValidated)
def on_order_validated(event: OrderValidated, envelope: Envelope) -> None:
    services.charge_order(order_id=event.order_id, amount=event.total, payment_token=event.payment_token)


# Routing table: which event makes Payments do what (the decorator above registers exactly this).
ROUTES: dict[type[Event], Handler] = {
    OrderValidated: on_order_validated,
}

# Payments keeps no views of other contexts' events: the amount travels in OrderValidated.
REBUILDABLE_VIEWS: list[type[Model]] = []
