"""The write path of the orders context: each command is one transaction that changes the
Order and emits the event describing the change (the transactional outbox).

`place_order` is called by the API; the others by the handlers of other contexts' events, and
they ignore (and log) any event that would move an order along a transition the state machine
does not allow, so redeliveries and stragglers change nothing. The handler-path commands open
`transaction.atomic(savepoint=False)`: inside the consumer runner they join its batch
transaction without a savepoint per event (a failure rolls the batch back and the runner
retries it); called anywhere else they are a transaction of their own.

One module per part of the write path: `placing` (the API's command, its requests and
refusals), `state_machine` (stock and payment outcomes), `shipment_status` (Shipments'
progress), `notifying` (the customer emails a change decides) and `stock_view` (Orders' copy
of stock levels). Callers import from here.
"""

from .placing import (
    IdempotencyKeyReused,
    InsufficientStock,
    LineRequest,
    OrderingError,
    Placement,
    Shortage,
    UnknownProducts,
    place_order,
    request_fingerprint,
)
from .shipment_status import record_shipment_dispatched, record_shipments_prepared
from .state_machine import confirm_order, reject_order, validate_order
from .stock_view import apply_stock_level

__all__ = [
    "IdempotencyKeyReused",
    "InsufficientStock",
    "LineRequest",
    "OrderingError",
    "Placement",
    "Shortage",
    "UnknownProducts",
    "apply_stock_level",
    "confirm_order",
    "place_order",
    "record_shipment_dispatched",
    "record_shipments_prepared",
    "reject_order",
    "request_fingerprint",
    "validate_order",
]
