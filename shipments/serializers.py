"""What the shipments API reads and writes."""

from rest_framework import serializers

from backbone.serializers import StrictSerializer

from .models import Shipment, ShipmentLine


class DispatchSerializer(StrictSerializer):
    carrier = serializers.CharField(
        required=False,
        min_length=1,
        max_length=100,
        help_text="the carrier taking the parcel; the default carrier if omitted",
    )


class ShipmentLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = ShipmentLine
        fields = ["sku", "quantity"]


class ShipmentSerializer(serializers.ModelSerializer):
    lines = ShipmentLineSerializer(many=True, read_only=True)

    class Meta:
        model = Shipment
        fields = [
            "id",
            "order_id",
            "state",
            "carrier",
            "tracking_number",
            "prepared_at",
            "dispatched_at",
            "lines",
        ]
        read_only_fields = fields


class AlreadyDispatchedSerializer(serializers.Serializer):
    detail = serializers.CharField()
    shipment = ShipmentSerializer()
