"""How Shipments reacts to the orders it hears about. Each handler runs in the consumer's
transaction (with the inbox row and the event's correlation scope) and calls one service."""

from django.db.models import Model

from backbone.contracts import Event
from backbone.envelope import Envelope
from backbone.subscriptions import Handler, subscribe
from orders.events import OrderConfirmed

from . import services


@subscribe(OrderConfirmed)
def on_order_confirmed(event: OrderConfirmed, envelope: Envelope) -> None:
    services.prepare_shipment(order_id=event.order_id, customer_id=event.customer_id, lines=event.lines)


# Routing table: which event makes Shipments do what (the decorator above registers exactly this).
ROUTES: dict[type[Event], Handler] = {
    OrderConfirmed: on_order_confirmed,
}

# Shipments keeps no views of other contexts' events: the lines travel in OrderConfirmed.
REBUILDABLE_VIEWS: list[type[Model]] = []
