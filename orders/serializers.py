"""Request validation and response shapes of the orders API."""

import math
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from backbone.serializers import StrictSerializer
from outbox.story import StoryEntry

from .models import Order, OrderLine, RejectionReason, ShipmentStatus, StockLevelView
from .selectors import known_skus
from .story_fields import customer_visible

# --- Requests ------------------------------------------------------------------------------------


class LineInputSerializer(StrictSerializer):
    sku = serializers.CharField(min_length=1, max_length=64)
    quantity = serializers.IntegerField(min_value=1, max_value=10_000)


class PlaceOrderSerializer(StrictSerializer):
    lines = LineInputSerializer(many=True, allow_empty=False)
    payment_token = serializers.CharField(
        min_length=1, max_length=200, help_text="card token; `tok_declined` is declined"
    )

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        # The cap as the list's max_length, read when the serializer is made (a setting tests
        # change), so that the schema states it as maxItems too.
        lines = fields["lines"]
        lines.max_length = settings.ORDER_MAX_LINES
        lines.error_messages["max_length"] = "An order has at most {max_length} lines."
        return fields

    def validate_lines(self, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        skus = [line["sku"] for line in lines]
        duplicates = sorted({sku for sku in skus if skus.count(sku) > 1})
        if duplicates:
            raise serializers.ValidationError(
                f"Each sku may appear on one line only; repeated: {', '.join(duplicates)}."
            )
        known = known_skus(skus)
        if len(known) < len(skus):
            # One entry per line, like DRF's own errors for a list: {} for the lines that are fine.
            raise serializers.ValidationError(
                [{} if line["sku"] in known else {"sku": [f"Unknown sku {line['sku']!r}."]} for line in lines]
            )
        return lines


class WaitQuerySerializer(serializers.Serializer):
    wait = serializers.FloatField(
        min_value=0,
        required=False,
        default=0,
        help_text="seconds to wait for the order to become CONFIRMED or REJECTED (capped by the server)",
    )

    def validate_wait(self, wait: float) -> float:
        # float() takes "nan" and "inf", which no comparison with min_value refuses.
        if not math.isfinite(wait):
            raise serializers.ValidationError("A finite number of seconds is required.")
        return wait


# --- Responses -----------------------------------------------------------------------------------


class ProductSerializer(serializers.ModelSerializer):
    available = serializers.IntegerField(help_text="units available as of Orders' view of Stock's levels")

    class Meta:
        model = StockLevelView
        fields = ["sku", "name", "price", "available"]


class OrderLineSerializer(serializers.ModelSerializer):
    line_total = serializers.DecimalField(max_digits=14, decimal_places=2, read_only=True)

    class Meta:
        model = OrderLine
        fields = ["sku", "name", "quantity", "unit_price", "line_total"]


class OrderShipmentSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="shipment_id")
    status = serializers.ChoiceField(source="shipment_status", choices=ShipmentStatus.choices)
    carrier = serializers.CharField()
    tracking_number = serializers.CharField()
    dispatched_at = serializers.DateTimeField(allow_null=True)


class OrderSerializer(serializers.ModelSerializer):
    reason = serializers.SerializerMethodField(help_text="why the order was rejected; null otherwise")
    lines = OrderLineSerializer(many=True, read_only=True)
    shipment = serializers.SerializerMethodField(help_text="null until Shipments has prepared it")

    class Meta:
        model = Order
        fields = ["id", "state", "reason", "lines", "total", "shipment", "created_at", "updated_at"]

    @extend_schema_field(serializers.ChoiceField(choices=RejectionReason.choices, allow_null=True))
    def get_reason(self, order: Order) -> str | None:
        return order.reason or None

    @extend_schema_field(OrderShipmentSerializer(allow_null=True))
    def get_shipment(self, order: Order) -> dict[str, Any] | None:
        if order.shipment_status == ShipmentStatus.NONE:
            return None
        return _SHIPMENT.to_representation(order)


class _OrderWithoutLinesSerializer(OrderSerializer):
    class Meta(OrderSerializer.Meta):
        fields = [name for name in OrderSerializer.Meta.fields if name != "lines"]


# DRF copies a serializer's declared fields for every instance it makes: most of the CPU of
# answering with one order (a millisecond, against a tenth for the representation itself).
# These are made once and their fields copied once; representing an order keeps no state on
# them, so every thread shares them.
_SHIPMENT = OrderShipmentSerializer()
_ORDER = _OrderWithoutLinesSerializer()
_LINE = OrderLineSerializer()


def order_representation(order: Order, lines: Sequence[OrderLine]) -> dict[str, Any]:
    """`OrderSerializer(order).data` for an order whose `lines` the caller has (just written, or
    read with the order), without making a serializer per order or querying them again."""
    head = _ORDER.to_representation(order)
    head["lines"] = [_LINE.to_representation(line) for line in lines]
    return {name: head[name] for name in OrderSerializer.Meta.fields}


class OrderShortageSerializer(serializers.Serializer):
    sku = serializers.CharField()
    requested = serializers.IntegerField()
    available = serializers.IntegerField()


class InsufficientStockSerializer(serializers.Serializer):
    detail = serializers.CharField()
    shortages = OrderShortageSerializer(many=True)


class OrderErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class HandlingSerializer(serializers.Serializer):
    context = serializers.CharField(help_text="the context whose consumer group handled the event")
    handled_at = serializers.DateTimeField()


class StoryEventSerializer(serializers.Serializer):
    """One event of an order's story: its CloudEvents attributes, where Kafka stored it, who handled it."""

    id = serializers.CharField(source="event_id", help_text="ce_id")
    type = serializers.CharField(source="event_type", help_text="ce_type, e.g. orders.OrderRequested")
    time = serializers.DateTimeField(source="occurred_at", help_text="ce_time")
    causation_id = serializers.CharField(
        allow_null=True, help_text="ce_causationid: the event that caused it"
    )
    topic = serializers.CharField()
    key = serializers.CharField(help_text="the record key: the order id, or the sku on stock.levels")
    partition = serializers.IntegerField(allow_null=True, help_text="null until the relay has published it")
    offset = serializers.IntegerField(allow_null=True)
    published_at = serializers.DateTimeField(allow_null=True)
    handled_by = HandlingSerializer(many=True)
    data = serializers.SerializerMethodField(
        help_text="the event's data, only the fields a customer may read (orders/story_fields.py)"
    )

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_data(self, entry: StoryEntry) -> dict[str, Any]:
        return customer_visible(entry.event_type, entry.payload)


class OrderStorySerializer(serializers.Serializer):
    order_id = serializers.UUIDField()
    correlation_id = serializers.CharField()
    events = StoryEventSerializer(many=True)
