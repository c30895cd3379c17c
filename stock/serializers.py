"""What the stock API reads and writes."""

from rest_framework import serializers

from backbone.serializers import StrictSerializer

from .models import MAX_UNITS, StockLevel


class ReceiptSerializer(StrictSerializer):
    quantity = serializers.IntegerField(
        min_value=1, max_value=MAX_UNITS, help_text="units that arrived in the warehouse"
    )


class StockLevelSerializer(serializers.ModelSerializer):
    sku = serializers.CharField(read_only=True)
    name = serializers.CharField(source="product.name", read_only=True)
    price = serializers.DecimalField(source="product.price", max_digits=12, decimal_places=2, read_only=True)
    available = serializers.IntegerField(read_only=True)

    class Meta:
        model = StockLevel
        fields = ["sku", "name", "price", "on_hand", "reserved", "available", "version"]
        read_only_fields = fields
