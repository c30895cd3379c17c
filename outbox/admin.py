"""Admin of the outbox: read-only, because only emit() writes rows and only the relay marks them.
And the dead letters' admin (backbone.admin's) with a link to their story, the outbox's picture."""

import uuid
from collections.abc import Sequence
from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from backbone.admin import DeadLetterAdmin as ConsumerDeadLetterAdmin
from backbone.models import DeadLetter

from .models import OutboxRecord


class PublishedFilter(admin.SimpleListFilter):
    title = "published"
    parameter_name = "published"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[OutboxRecord]
    ) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No (waiting for the relay)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[OutboxRecord]) -> QuerySet[OutboxRecord]:
        if self.value() == "yes":
            return queryset.filter(published_at__isnull=False)
        if self.value() == "no":
            # Through the relay's working set: published_at has no index (marks stay HOT).
            return queryset.filter(id__in=RawSQL("SELECT id FROM outbox_pending", []))
        return queryset


@admin.register(OutboxRecord)
class OutboxRecordAdmin(admin.ModelAdmin[OutboxRecord]):
    list_display = [
        "id",
        "event_type",
        "topic",
        "key",
        "correlation_id",
        "occurred_at",
        "published",
        "kafka_partition",
        "kafka_offset",
        "story",
    ]
    list_filter = ["event_type", "topic", PublishedFilter]
    date_hierarchy = "occurred_at"
    search_help_text = "An exact correlation id, aggregate key or event id (ce_id)."
    ordering = ["-id"]
    show_full_result_count = False  # a large outbox makes COUNT(*) slow for nothing

    # Declared so the search box appears; get_search_results does the matching.
    search_fields = ["=correlation_id", "=key"]

    @admin.display(description="story")
    def story(self, record: OutboxRecord) -> SafeString:
        return format_html('<a href="{}">picture</a>', reverse("outbox-story", args=[record.correlation_id]))

    @admin.display(boolean=True, description="published", ordering="published_at")
    def published(self, record: OutboxRecord) -> bool:
        return record.is_published

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[OutboxRecord], search_term: str
    ) -> tuple[QuerySet[OutboxRecord], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(correlation_id=term) | Q(key=term)
        event_id = _as_uuid(term)
        if event_id is not None:
            match |= Q(event_id=event_id)
        return queryset.filter(match), False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# The backbone registers the dead letters' admin without the story link: the picture is the
# outbox's, above it. The outbox, which imports the backbone, registers it again with the link.
admin.site.unregister(DeadLetter)


@admin.register(DeadLetter)
class DeadLetterAdmin(ConsumerDeadLetterAdmin):
    def get_list_display(self, request: HttpRequest) -> list[Any]:
        return [*super().get_list_display(request), "story"]

    def get_fields(self, request: HttpRequest, obj: DeadLetter | None = None) -> list[Any]:
        return _with_story(super().get_fields(request, obj))

    def get_readonly_fields(self, request: HttpRequest, obj: DeadLetter | None = None) -> list[Any]:
        return _with_story(super().get_readonly_fields(request, obj))

    @admin.display(description="story")
    def story(self, letter: DeadLetter) -> SafeString | str:
        if not letter.correlation_id:  # an invalid record may carry none
            return "-"
        return format_html('<a href="{}">picture</a>', reverse("outbox-story", args=[letter.correlation_id]))


def _with_story(fields: Sequence[Any]) -> list[Any]:
    """The fields with the story link after the correlation id it pictures."""
    with_story: list[Any] = []
    for field in fields:
        with_story.extend((field, "story") if field == "correlation_id" else (field,))
    return with_story


def _as_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None
