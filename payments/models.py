"""Rows owned by the payments context: one payment per order, and every call to the gateway."""

import uuid

from django.db import models
from django.db.models import Q


class Payment(models.Model):
    """The charge of one order. `order_id` is unique: one charge per order, however often
    OrderValidated is delivered or replayed."""

    class State(models.TextChoices):
        PENDING = "pending", "pending (being charged)"
        PROCESSED = "processed"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order_id = models.UUIDField(unique=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    gateway_reference = models.CharField(max_length=200, blank=True, default="")
    failure_reason = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "created_at"], name="payments_payment_state")]

    def __str__(self) -> str:
        return f"{self.amount} for order {self.order_id}: {self.state}"


class PaymentAttempt(models.Model):
    """One call to the gateway, with the idempotency key it was made with and what came back."""

    class Outcome(models.TextChoices):
        STARTED = "started", "started (no answer yet)"
        APPROVED = "approved"
        DECLINED = "declined"

    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="attempts")
    idempotency_key = models.CharField(max_length=100)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, default=Outcome.STARTED)
    gateway_reference = models.CharField(max_length=200, blank=True, default="")
    decline_reason = models.CharField(max_length=200, blank=True, default="")
    gateway = models.CharField(max_length=200, help_text="the adapter class that made the call")
    created_at = models.DateTimeField(auto_now_add=True)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(outcome="started") | Q(answered_at__isnull=False),
                name="payments_attempt_answered",
            )
        ]

    def __str__(self) -> str:
        return f"attempt {self.idempotency_key}: {self.outcome}"
