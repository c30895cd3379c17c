"""Admin of the payments context: read-only, since money moves only through `charge_order`."""

from django.contrib import admin

from backbone.readonly_admin import ReadOnlyMixin

from .models import Payment, PaymentAttempt


class PaymentAttemptInline(ReadOnlyMixin, admin.TabularInline):
    model = PaymentAttempt
    fields = [
        "idempotency_key",
        "amount",
        "outcome",
        "gateway_reference",
        "decline_reason",
        "gateway",
        "created_at",
    ]
    readonly_fields = fields


@admin.register(Payment)
class PaymentAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["order_id", "amount", "state", "failure_reason", "gateway_reference", "created_at"]
    list_filter = ["state"]
    search_fields = ["order_id", "id", "gateway_reference"]
    date_hierarchy = "created_at"
    inlines = [PaymentAttemptInline]


@admin.register(PaymentAttempt)
class PaymentAttemptAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["idempotency_key", "amount", "outcome", "decline_reason", "gateway", "created_at"]
    list_filter = ["outcome", "gateway"]
    search_fields = ["idempotency_key", "gateway_reference"]
    list_select_related = ["payment"]
