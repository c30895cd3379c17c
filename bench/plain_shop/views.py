"""POST /bench/plain/orders/: an order from stock check to queued email, in one transaction.

The same business steps an order takes in the shop (where they are events between four
contexts): check the stock of every line (rows locked, so concurrent orders cannot both take
the last unit), reserve it, charge the card, confirm, prepare the shipment, queue the email.
Authenticated and parsed by the shop's DRF settings, like the shop's POST /api/orders/.
"""

from collections import Counter
from decimal import Decimal
from typing import Any

from django.db import transaction
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bench.plain_shop import gateway
from bench.plain_shop.models import Order, OrderLine, OutgoingEmail, Payment, Product, Shipment


class LineSerializer(serializers.Serializer[Any]):
    sku = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(min_value=1, max_value=1000)


class PlaceOrderSerializer(serializers.Serializer[Any]):
    lines = LineSerializer(many=True, allow_empty=False)
    payment_token = serializers.CharField(max_length=200)


class Refused(Exception):
    """The order cannot be placed: the transaction is rolled back and the client told why."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


class PlaceOrderView(APIView):
    def post(self, request: Request) -> Response:
        body = PlaceOrderSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        wanted = Counter[str]()
        for line in body.validated_data["lines"]:
            wanted[line["sku"]] += line["quantity"]
        try:
            order = place(request.user, wanted, body.validated_data["payment_token"])
        except Refused as refused:
            return Response({"detail": refused.detail}, status=refused.status_code)
        return Response(
            {"id": order.pk, "state": order.state, "total": str(order.total)}, status=status.HTTP_201_CREATED
        )


@transaction.atomic
def place(customer: Any, wanted: Counter[str], payment_token: str) -> Order:
    products = _reserve(wanted)
    total = sum((products[sku].price * quantity for sku, quantity in wanted.items()), Decimal(0))
    order = Order.objects.create(customer=customer, state="PLACED", total=total)
    OrderLine.objects.bulk_create(
        OrderLine(order=order, product=products[sku], quantity=quantity, price=products[sku].price)
        for sku, quantity in wanted.items()
    )
    charge = gateway.charge(idempotency_key=f"order-{order.pk}", amount=total, token=payment_token)
    if not charge.approved:
        raise Refused(status.HTTP_402_PAYMENT_REQUIRED, "card declined")
    Payment.objects.create(order=order, amount=total, approved=True, reference=charge.reference)
    order.state = "CONFIRMED"
    order.save(update_fields=["state"])
    Shipment.objects.create(order=order, state="PREPARING")
    OutgoingEmail.objects.create(
        to=customer.email or customer.get_username(),
        subject=f"Order {order.pk} confirmed",
        body=f"Thank you: {total} charged, your parcel is being prepared.",
    )
    return order


def _reserve(wanted: Counter[str]) -> dict[str, Product]:
    """Lock the lines' products (in sku order: no deadlock between two orders), check and take
    their stock."""
    locked = Product.objects.select_for_update().filter(sku__in=wanted).order_by("sku")
    products = {product.sku: product for product in locked}
    missing = sorted(set(wanted) - set(products))
    if missing:
        raise Refused(status.HTTP_404_NOT_FOUND, f"unknown products: {', '.join(missing)}")
    short = sorted(sku for sku, quantity in wanted.items() if products[sku].on_hand < quantity)
    if short:
        raise Refused(status.HTTP_409_CONFLICT, f"not enough stock: {', '.join(short)}")
    for sku, quantity in wanted.items():
        products[sku].on_hand -= quantity
        products[sku].save(update_fields=["on_hand"])
    return products
