"""How Stock reacts to the orders it hears about. Each handler runs in the consumer's
transaction (with the inbox row and the event's correlation scope) and calls one service."""

from django.db.models import Model

from backbone.contracts import Event
from backbone.envelope import Envelope
from backbone.subscriptions import Handler, subscribe
from orders.events import OrderConfirmed, OrderRejected, OrderRequested

from . import services


@subscribe(OrderRequested)
def on_order_requested(event: OrderRequested, envelope: Envelope) -> None:
    services.reserve_for_order(order_id=event.order_id, lines=event.lines)


@subscribe(OrderConfirmed)
def on_order_confirmed(event: OrderConfirmed, envelope: Envelope) -> None:
    services.commit_reservation(order_id=event.order_id)


@subscribe(OrderRejected)
def on_order_rejected(event: OrderRejected, envelope: Envelope) -> None:
    services.release_reservation(order_id=event.order_id)


# Routing table: which event makes Stock do what (the decorators above register exactly these).
ROUTES: dict[type[Event], Handler] = {
    OrderRequested: on_order_requested,
    OrderConfirmed: on_order_confirmed,
    OrderRejected: on_order_rejected,
}

# Stock keeps no views of other contexts' events: an order's lines travel in the event itself.
REBUILDABLE_VIEWS: list[type[Model]] = []
