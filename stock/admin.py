"""Admin of the stock context: for looking, not editing.

Every change of stock must emit StockLevelChanged in the same transaction, so it goes through
`stock.services` (the receipts API, the event handlers, `seed_demo`), never through a form.
"""

from django.contrib import admin

from backbone.readonly_admin import ReadOnlyMixin

from .models import Product, Reservation, ReservationLine, StockLevel, StockReceipt


class StockLevelInline(ReadOnlyMixin, admin.StackedInline):
    model = StockLevel
    fields = ["on_hand", "reserved", "available", "version", "reorder_requested", "updated_at"]
    readonly_fields = fields


@admin.register(Product)
class ProductAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["sku", "name", "price", "on_hand", "reserved", "available", "reorder_point"]
    search_fields = ["sku", "name"]
    inlines = [StockLevelInline]
    list_select_related = ["level"]

    @admin.display(description="on hand")
    def on_hand(self, product: Product) -> int:
        return product.level.on_hand

    @admin.display(description="reserved")
    def reserved(self, product: Product) -> int:
        return product.level.reserved

    @admin.display(description="available")
    def available(self, product: Product) -> int:
        return product.level.available


@admin.register(StockLevel)
class StockLevelAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "product",
        "on_hand",
        "reserved",
        "available",
        "version",
        "reorder_requested",
        "updated_at",
    ]
    list_filter = ["reorder_requested"]
    search_fields = ["product__sku", "product__name"]
    list_select_related = ["product"]


class ReservationLineInline(ReadOnlyMixin, admin.TabularInline):
    model = ReservationLine
    fields = ["product", "quantity"]
    readonly_fields = fields


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["order_id", "state", "created_at", "updated_at"]
    list_filter = ["state"]
    search_fields = ["order_id"]
    date_hierarchy = "created_at"
    inlines = [ReservationLineInline]


@admin.register(StockReceipt)
class StockReceiptAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["product", "quantity", "received_by", "received_at"]
    search_fields = ["product__sku"]
    list_select_related = ["product", "received_by"]
