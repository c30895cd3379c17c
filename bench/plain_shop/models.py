"""Just the rows a plain shop writes for an order: stock, the order and its lines, the
payment, the shipment, the confirmation email waiting to be sent."""

from django.conf import settings
from django.db import models


class Product(models.Model):
    sku = models.CharField(max_length=64, unique=True)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    on_hand = models.PositiveIntegerField()

    def __str__(self) -> str:
        return self.sku


class Order(models.Model):
    customer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    state = models.CharField(max_length=16)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"order {self.pk} {self.state}"


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT)
    quantity = models.PositiveIntegerField()
    price = models.DecimalField(max_digits=10, decimal_places=2)

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product_id}"


class Payment(models.Model):
    order = models.OneToOneField(Order, on_delete=models.CASCADE)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    approved = models.BooleanField()
    reference = models.CharField(max_length=64)

    def __str__(self) -> str:
        return self.reference


class Shipment(models.Model):
    order = models.OneToOneField(Order, on_delete=models.CASCADE)
    state = models.CharField(max_length=16)

    def __str__(self) -> str:
        return f"shipment of order {self.order_id}"


class OutgoingEmail(models.Model):
    """Queued in the order's transaction; a worker would send it (none runs in the bench)."""

    to = models.CharField(max_length=254)
    subject = models.CharField(max_length=200)
    body = models.TextField()
    queued_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.subject
