"""Admin of the orders context: read-only, because orders change only through events."""

from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from backbone.readonly_admin import ReadOnlyAdmin, ReadOnlyMixin

from .models import Notification, Order, OrderLine, StockLevelView


class OrderLineInline(ReadOnlyMixin, admin.TabularInline):
    model = OrderLine
    fields = ["sku", "name", "quantity", "unit_price"]
    readonly_fields = fields
    extra = 0
    can_delete = False


class NotificationInline(ReadOnlyMixin, admin.TabularInline):
    model = Notification
    fields = ["kind", "status", "recipient", "created_at", "sent_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ["id", "customer", "state", "reason", "total", "shipment_status", "created_at"]
    list_filter = ["state", "reason", "shipment_status", "created_at"]
    search_fields = ["id", "customer__username", "correlation_id", "tracking_number"]
    list_select_related = ["customer"]
    date_hierarchy = "created_at"
    inlines = [OrderLineInline, NotificationInline]
    fieldsets = [
        (None, {"fields": ["id", "customer", "state", "reason", "total", "created_at", "updated_at"]}),
        ("Events", {"fields": ["correlation_id", "story_picture", "events_in_outbox", "events_in_inbox"]}),
        (
            "Shipment",
            {"fields": ["shipment_status", "shipment_id", "carrier", "tracking_number", "dispatched_at"]},
        ),
        ("Request", {"fields": ["idempotency_key", "payment_token"], "classes": ["collapse"]}),
    ]

    @admin.display(description="story")
    def story_picture(self, order: Order) -> SafeString | str:
        try:  # by name: the picture is the outbox's, which the contexts do not import
            url = reverse("outbox-story", args=[order.correlation_id])
        except NoReverseMatch:
            return "-"
        return format_html('<a href="{}?subject={}">its story as a picture</a>', url, order.id)

    @admin.display(description="published events")
    def events_in_outbox(self, order: Order) -> SafeString | str:
        return _changelist_link("outbox", "outboxrecord", order.correlation_id, "its events in the outbox")

    @admin.display(description="handled events")
    def events_in_inbox(self, order: Order) -> SafeString | str:
        return _changelist_link("backbone", "inboxentry", order.correlation_id, "the consumers' inbox rows")


def _changelist_link(app: str, model: str, correlation_id: str, text: str) -> SafeString | str:
    try:
        url = reverse(f"admin:{app}_{model}_changelist")
    except NoReverseMatch:  # that admin is not installed
        return "-"
    return format_html('<a href="{}?correlation_id={}">{}</a>', url, correlation_id, text)


@admin.register(StockLevelView)
class StockLevelViewAdmin(ReadOnlyAdmin):
    list_display = ["sku", "name", "price", "available", "version", "updated_at"]
    search_fields = ["sku", "name"]


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ["order", "kind", "status", "recipient", "created_at", "sent_at"]
    list_filter = ["kind", "status"]
    search_fields = ["order__id", "recipient"]
    list_select_related = ["order"]
