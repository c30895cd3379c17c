"""Rows owned by the shipments context: one shipment per confirmed order, with its lines."""

import uuid

from django.db import models
from django.db.models import Q


class Shipment(models.Model):
    class State(models.TextChoices):
        PREPARED = "prepared"
        DISPATCHED = "dispatched"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order_id = models.UUIDField(unique=True, help_text="one shipment per order")
    customer_id = models.BigIntegerField()
    state = models.CharField(max_length=20, choices=State.choices, default=State.PREPARED)
    carrier = models.CharField(max_length=100, blank=True, default="")
    tracking_number = models.CharField(max_length=100, blank=True, default="")
    prepared_at = models.DateTimeField()
    dispatched_at = models.DateTimeField(null=True, blank=True)
    # The order's story: a dispatch, however it is triggered, continues it.
    correlation_id = models.CharField(max_length=128, blank=True, default="")
    prepared_event_id = models.CharField(
        max_length=64, blank=True, default="", help_text="ce_id of ShipmentPrepared"
    )
    # ...and its trace: a dispatch by staff or the periodic task is a span of the order's trace.
    prepared_traceparent = models.CharField(
        max_length=55, blank=True, default="", help_text="ce_traceparent of ShipmentPrepared"
    )

    class Meta:
        ordering = ["-prepared_at"]
        indexes = [
            # The periodic dispatch scans only what still waits, oldest first.
            models.Index(fields=["prepared_at"], condition=Q(state="prepared"), name="shipments_waiting"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(state="prepared") | (Q(dispatched_at__isnull=False) & ~Q(tracking_number="")),
                name="shipments_dispatched_has_tracking",
            )
        ]

    def __str__(self) -> str:
        return f"shipment of order {self.order_id}: {self.state}"


class ShipmentLine(models.Model):
    shipment = models.ForeignKey(Shipment, on_delete=models.CASCADE, related_name="lines")
    sku = models.CharField(max_length=64)
    quantity = models.PositiveIntegerField()

    class Meta:
        ordering = ["sku"]
        constraints = [
            models.UniqueConstraint(fields=["shipment", "sku"], name="shipments_line_per_sku"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="shipments_line_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"
