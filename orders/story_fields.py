"""Which fields of each event's data a customer may read in an order's story.

An explicit allow-list per event type: a field is shown only when it is listed here, and an
event type that is not listed shows no data at all (its type, ids and place on Kafka still
show). So a field added to a contract stays hidden until someone decides it may be shown.

Left out on purpose: the payment token (a secret only Payments needs, to charge), the customer
id (an internal key), Stock's on-hand and reserved counts, its reorder point and quantity (how
much stock the shop holds and buys is the shop's business), and payment ids.
"""

from typing import Any

CUSTOMER_VISIBLE_FIELDS: dict[str, frozenset[str]] = {
    "orders.OrderRequested": frozenset({"order_id", "lines", "total"}),
    "orders.OrderValidated": frozenset({"order_id", "total"}),
    "orders.OrderRejected": frozenset({"order_id", "reason"}),
    "orders.OrderConfirmed": frozenset({"order_id", "lines", "total"}),
    "stock.StockReserved": frozenset({"order_id", "lines"}),
    "stock.StockReservationFailed": frozenset({"order_id", "shortages"}),
    # What the catalog shows anyway.
    "stock.StockLevelChanged": frozenset({"sku", "name", "price", "available"}),
    "stock.StockReorderRequested": frozenset({"sku"}),
    "payments.PaymentProcessed": frozenset({"order_id", "amount"}),
    "payments.PaymentFailed": frozenset({"order_id", "amount", "reason"}),
    "shipments.ShipmentPrepared": frozenset({"order_id", "shipment_id"}),
    "shipments.ShipmentDispatched": frozenset(
        {"order_id", "shipment_id", "carrier", "tracking_number", "dispatched_at"}
    ),
}


def customer_visible(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """The part of an event's data a customer may read: the allowed fields, nothing else."""
    allowed = CUSTOMER_VISIBLE_FIELDS.get(event_type, frozenset())
    return {field: value for field, value in data.items() if field in allowed}
