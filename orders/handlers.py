"""What the orders context does with other contexts' events.

Each handler runs in the consumer runner's transaction (with the inbox row that makes a
redelivery a no-op) and inside the event's correlation scope, so what it emits continues the
order's story. Handlers only translate the event into one service call.

The stock level view is the busiest and simplest: each event carries a sku's full state, so
its batch handler writes a whole batch of them in one statement and emits nothing. A prepared
shipment only moves an order's shipment status, so it is batched the same way.
"""

from collections.abc import Sequence

from backbone.contracts import Event
from backbone.envelope import Envelope
from backbone.subscriptions import BatchHandler, Handler, subscribe, subscribe_batch
from backbone.versioned import apply_all_if_newer
from payments.events import PaymentFailed, PaymentProcessed
from shipments.events import ShipmentDispatched, ShipmentPrepared
from stock.events import StockLevelChanged, StockReservationFailed, StockReserved

from . import services
from .models import RejectionReason, StockLevelView

# Read models that `rebuild_views` may empty and replay from the topics.
REBUILDABLE_VIEWS = [StockLevelView]


@subscribe(StockReserved)
def on_stock_reserved(event: StockReserved, envelope: Envelope) -> None:
    services.validate_order(order_id=event.order_id)


@subscribe(StockReservationFailed)
def on_stock_reservation_failed(event: StockReservationFailed, envelope: Envelope) -> None:
    services.reject_order(order_id=event.order_id, reason=RejectionReason.OUT_OF_STOCK)


@subscribe(PaymentProcessed)
def on_payment_processed(event: PaymentProcessed, envelope: Envelope) -> None:
    services.confirm_order(order_id=event.order_id)


@subscribe(PaymentFailed)
def on_payment_failed(event: PaymentFailed, envelope: Envelope) -> None:
    services.reject_order(order_id=event.order_id, reason=RejectionReason.PAYMENT_DECLINED)


@subscribe_batch(ShipmentPrepared)
def on_shipment_prepared(items: Sequence[tuple[ShipmentPrepared, Envelope]]) -> None:
    """Only a state change: the batch's in one statement (after its per-event handlers, so a
    ShipmentDispatched of the same batch is already recorded and is not walked back)."""
    services.record_shipments_prepared((event.order_id, event.shipment_id) for event, _ in items)


@subscribe(ShipmentDispatched)
def on_shipment_dispatched(event: ShipmentDispatched, envelope: Envelope) -> None:
    services.record_shipment_dispatched(
        order_id=event.order_id,
        shipment_id=event.shipment_id,
        carrier=event.carrier,
        tracking_number=event.tracking_number,
        dispatched_at=event.dispatched_at,
    )


@subscribe_batch(StockLevelChanged)
def on_stock_level_changed(items: Sequence[tuple[StockLevelChanged, Envelope]]) -> None:
    """Newest version per sku wins, as `services.apply_stock_level` does for one event."""
    apply_all_if_newer(
        StockLevelView,
        [
            {
                "sku": event.sku,
                "name": event.name,
                "price": event.price,
                "available": event.available,
                "version": event.version,
            }
            for event, _ in items
        ],
        key_field="sku",
    )


# Routing tables: which event makes Orders do what (the decorators above register exactly these).
ROUTES: dict[type[Event], Handler] = {
    StockReserved: on_stock_reserved,
    StockReservationFailed: on_stock_reservation_failed,
    PaymentProcessed: on_payment_processed,
    PaymentFailed: on_payment_failed,
    ShipmentDispatched: on_shipment_dispatched,
}
BATCH_ROUTES: dict[type[Event], BatchHandler] = {
    ShipmentPrepared: on_shipment_prepared,
    StockLevelChanged: on_stock_level_changed,
}
