"""Rows owned by the orders context: the Order aggregate, its lines, the notifications sent
about it, and Orders' local view of stock levels (built only from Stock's events)."""

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q


class OrderState(models.TextChoices):
    REQUESTED = "REQUESTED", "requested"
    VALIDATED = "VALIDATED", "validated (stock reserved)"
    CONFIRMED = "CONFIRMED", "confirmed (paid)"
    REJECTED = "REJECTED", "rejected"


# The state machine, in one greppable table: an event that asks for any other move is ignored.
ALLOWED_TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    OrderState.REQUESTED: frozenset({OrderState.VALIDATED, OrderState.REJECTED}),
    OrderState.VALIDATED: frozenset({OrderState.CONFIRMED, OrderState.REJECTED}),
    OrderState.CONFIRMED: frozenset(),
    OrderState.REJECTED: frozenset(),
}
FINAL_STATES = frozenset(state for state, targets in ALLOWED_TRANSITIONS.items() if not targets)


class RejectionReason(models.TextChoices):
    OUT_OF_STOCK = "out_of_stock", "out of stock"
    PAYMENT_DECLINED = "payment_declined", "payment declined"


class ShipmentStatus(models.TextChoices):
    NONE = "", "not yet prepared"
    PREPARED = "prepared", "prepared"
    DISPATCHED = "dispatched", "dispatched"


class Order(models.Model):
    """A customer's order. Its state only moves through the transitions above, driven by events."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders")
    state = models.CharField(max_length=16, choices=OrderState.choices, default=OrderState.REQUESTED)
    reason = models.CharField(max_length=32, choices=RejectionReason.choices, blank=True, default="")
    payment_token = models.CharField(max_length=200)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    correlation_id = models.CharField(max_length=128, help_text="ce_correlationid of its events")
    idempotency_key = models.CharField(max_length=255, blank=True, default="")
    request_fingerprint = models.CharField(
        max_length=64, blank=True, default="", help_text="sha256 of the body the key was first used with"
    )
    shipment_status = models.CharField(
        max_length=16, choices=ShipmentStatus.choices, blank=True, default=ShipmentStatus.NONE
    )
    shipment_id = models.UUIDField(null=True, blank=True)
    carrier = models.CharField(max_length=100, blank=True, default="")
    tracking_number = models.CharField(max_length=100, blank=True, default="")
    dispatched_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="orders_unique_idempotency_key_per_customer",
            ),
            models.CheckConstraint(
                condition=Q(state="REJECTED", reason__in=["out_of_stock", "payment_declined"])
                | (~Q(state="REJECTED") & Q(reason="")),
                name="orders_reason_iff_rejected",
            ),
        ]
        indexes = [models.Index(fields=["customer", "-created_at"], name="orders_customer_recent")]

    def __str__(self) -> str:
        return f"order {self.id} ({self.state})"

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    def can_become(self, target: OrderState) -> bool:
        return target in ALLOWED_TRANSITIONS[OrderState(self.state)]


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    sku = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["order", "sku"], name="orders_one_line_per_sku"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="orders_line_quantity_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity


class StockLevelView(models.Model):
    """Orders' local view of Stock's levels: written only from `StockLevelChanged` events,
    newest version wins. Stale by a few milliseconds, which the pre-check accepts: Stock's
    own reservation is the authority, this view only turns away what is surely too much."""

    sku = models.CharField(max_length=64, primary_key=True)
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=12, decimal_places=2)
    available = models.IntegerField()
    version = models.PositiveBigIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "orders_stock_level_view"
        ordering = ["sku"]
        verbose_name = "stock level (Orders' view)"

    def __str__(self) -> str:
        return f"{self.sku}: {self.available} available (v{self.version})"


class NotificationKind(models.TextChoices):
    CONFIRMATION = "confirmation", "order confirmed"
    DISPATCH = "dispatch", "order dispatched"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "pending"
    SENT = "sent", "sent"
    SKIPPED = "skipped", "skipped (no email address)"


class Notification(models.Model):
    """One email about one order, sent at most once: the row is created (pending) in the
    transaction that decides to notify, and claimed (locked, marked sent) by the task."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=16, choices=NotificationKind.choices)
    status = models.CharField(
        max_length=16, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    recipient = models.CharField(max_length=254, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["order", "kind"], name="orders_one_notification_per_kind"),
        ]
        indexes = [
            models.Index(
                fields=["created_at"], condition=Q(status="pending"), name="orders_notification_pending"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} email for order {self.order_id} ({self.status})"
