"""Rows owned by the stock context: the catalog, stock levels, reservations per order, receipts.

Stock has no views of other contexts' data: everything it needs arrives in the events it
handles (the order lines travel in OrderRequested).
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q

# The largest count a PositiveIntegerField (PostgreSQL integer) holds: stock on hand and a
# receipt's quantity stay within it, so a booking is refused rather than overflowing in SQL.
MAX_UNITS = 2**31 - 1


class Product(models.Model):
    sku = models.CharField(primary_key=True, max_length=64)
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=12, decimal_places=2)
    reorder_point = models.PositiveIntegerField(
        help_text="when available stock falls to or below this, Stock asks to buy more"
    )
    reorder_quantity = models.PositiveIntegerField(help_text="how much to buy when reordering")

    class Meta:
        ordering = ["sku"]
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=0), name="stock_product_price_not_negative")
        ]

    def __str__(self) -> str:
        return f"{self.sku} ({self.name})"


class StockLevel(models.Model):
    """How much of one sku is in the warehouse and how much of it is promised to orders.

    The check constraints are the last line of defence against overselling: even a buggy
    service cannot commit `reserved > on_hand`.
    """

    product = models.OneToOneField(Product, primary_key=True, on_delete=models.PROTECT, related_name="level")
    on_hand = models.PositiveIntegerField()
    reserved = models.PositiveIntegerField(default=0)
    version = models.PositiveBigIntegerField(
        default=1, help_text="grows by one with every change; carried in StockLevelChanged.version"
    )
    reorder_requested = models.BooleanField(
        default=False,
        help_text="a reorder was requested for the current crossing of the reorder point; "
        "cleared when available stock rises above it again",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["product_id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(reserved__lte=F("on_hand")), name="stock_level_never_oversold"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product_id}: {self.on_hand} on hand, {self.reserved} reserved"

    @property
    def sku(self) -> str:
        return self.product_id

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class Reservation(models.Model):
    """Stock's decision about one order, remembered so a redelivered event decides nothing twice."""

    class State(models.TextChoices):
        RESERVED = "reserved"
        FAILED = "failed", "failed (not enough stock)"
        COMMITTED = "committed"
        RELEASED = "released"

    order_id = models.UUIDField(primary_key=True)
    state = models.CharField(max_length=20, choices=State.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "created_at"], name="stock_reservation_state")]

    def __str__(self) -> str:
        return f"order {self.order_id}: {self.state}"


class ReservationLine(models.Model):
    reservation = models.ForeignKey(Reservation, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveIntegerField()

    class Meta:
        ordering = ["product_id"]
        constraints = [
            models.UniqueConstraint(fields=["reservation", "product"], name="stock_reservation_line_per_sku"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="stock_reservation_line_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product_id}"


class StockReceipt(models.Model):
    """Goods that arrived in the warehouse (a staff receipt): who booked how much, when."""

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="receipts")
    quantity = models.PositiveIntegerField()
    received_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [models.CheckConstraint(condition=Q(quantity__gt=0), name="stock_receipt_positive")]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product_id} at {self.received_at:%Y-%m-%d %H:%M}"
