"""Admin of the shipments context: read-only, since every change emits an event through
`shipments.services` (the dispatch API, the periodic dispatch, the OrderConfirmed handler)."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from backbone.readonly_admin import ReadOnlyMixin

from . import services
from .models import Shipment, ShipmentLine


class ShipmentLineInline(ReadOnlyMixin, admin.TabularInline):
    model = ShipmentLine
    fields = ["sku", "quantity"]
    readonly_fields = fields


@admin.register(Shipment)
class ShipmentAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["id", "order_id", "state", "carrier", "tracking_number", "prepared_at", "dispatched_at"]
    list_filter = ["state", "carrier"]
    search_fields = ["id", "order_id", "tracking_number"]
    date_hierarchy = "prepared_at"
    inlines = [ShipmentLineInline]
    actions = ["dispatch"]

    @admin.action(description="Dispatch the selected shipments")
    def dispatch(self, request: HttpRequest, queryset: QuerySet[Shipment]) -> None:
        dispatched = 0
        for shipment_id in queryset.filter(state=Shipment.State.PREPARED).values_list("id", flat=True):
            try:
                services.dispatch_shipment(shipment_id=shipment_id)
            except services.ShipmentAlreadyDispatched:
                continue
            dispatched += 1
        self.message_user(request, f"{dispatched} shipment(s) dispatched.", messages.SUCCESS)
