"""Admin of the consumer side: the inbox (read-only) and dead letters (replay, discard; found
by date, error text or event type; their payload edits, made with `manage.py deadletters edit`)."""

import json
from collections.abc import Callable
from contextlib import suppress

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from .deadletters import DeadLetterError, DeadLetterPublishError, Release, discard, replay, summary
from .models import DeadLetter, DeadLetterEdit, InboxEntry, ParkedRecord
from .readonly_admin import ReadOnlyAdmin
from .records import decode_headers


@admin.register(InboxEntry)
class InboxEntryAdmin(ReadOnlyAdmin[InboxEntry]):
    list_display = [
        "handled_at",
        "consumer_group",
        "event_type",
        "event_id",
        "topic",
        "partition",
        "offset",
        "key",
    ]
    list_filter = ["consumer_group", "event_type", ("handled_at", admin.DateFieldListFilter)]
    search_fields = ["=correlation_id", "=event_id", "=key"]
    date_hierarchy = "handled_at"
    ordering = ["-handled_at"]
    # Counting a large inbox for every page costs more than the page.
    show_full_result_count = False


class ParkedRecordInline(admin.TabularInline[ParkedRecord, DeadLetter]):
    model = ParkedRecord
    fields = readonly_fields = ("topic", "partition", "offset", "key", "parked_at")
    extra = 0
    can_delete = False
    ordering = ["partition", "offset"]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class DeadLetterEditInline(admin.TabularInline[DeadLetterEdit, DeadLetter]):
    """Who changed the payload (`manage.py deadletters edit`), when, and which fields."""

    model = DeadLetterEdit
    fields = readonly_fields = ("edited_at", "edited_by", "changes")
    extra = 0
    can_delete = False
    ordering = ["id"]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin[DeadLetter]):
    list_display = [
        "id",
        "status",
        "context",
        "event_type",
        "record",
        "key",
        "attempts",
        "parked_count",
        "error_summary",
        "created_at",
    ]
    list_filter = ["status", "reason", "context", "event_type", "topic"]
    # The error text and the event type by substring: operators search for "Timeout" or
    # "PaymentCaptured" the way they would in ServicePulse.
    search_fields = ["=event_id", "=correlation_id", "=key", "event_type", "error"]
    date_hierarchy = "created_at"
    ordering = ["-id"]
    actions = ["replay_selected", "discard_selected"]
    inlines = [DeadLetterEditInline, ParkedRecordInline]
    fields = readonly_fields = (
        "status",
        "reason",
        "context",
        "consumer_group",
        "record",
        "key",
        "event_type",
        "event_id",
        "correlation_id",
        "attempts",
        "created_at",
        "updated_at",
        "resolved_at",
        "headers_table",
        "value_text",
        "original_value_text",
        "error_text",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[DeadLetter]:
        return super().get_queryset(request).annotate(parked_count=Count("parked"))

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # The detail page is read-only, but the actions need to show on the list.
        return request.user.has_perm("backbone.change_deadletter")

    @admin.display(description="record")
    def record(self, letter: DeadLetter) -> str:
        return f"{letter.topic}[{letter.partition}]@{letter.offset}"

    @admin.display(description="parked", ordering="parked_count")
    def parked_count(self, letter: DeadLetter) -> int:
        count: int = letter.parked_count  # type: ignore[attr-defined]  # annotated in get_queryset
        return count

    @admin.display(description="error")
    def error_summary(self, letter: DeadLetter) -> str:
        return summary(letter.error)[:120]

    @admin.display(description="headers")
    def headers_table(self, letter: DeadLetter) -> str:
        lines = [
            f"{name}: {value.decode('utf-8', errors='replace')}"
            for name, value in decode_headers(letter.headers)
        ]
        return format_html("<pre>{}</pre>", "\n".join(lines))

    @admin.display(description="value")
    def value_text(self, letter: DeadLetter) -> str:
        return _payload_text(letter.value)

    @admin.display(description="value as consumed (before edits)")
    def original_value_text(self, letter: DeadLetter) -> str:
        return "-" if letter.original_value is None else _payload_text(letter.original_value)

    @admin.display(description="error")
    def error_text(self, letter: DeadLetter) -> str:
        return format_html("<pre>{}</pre>", letter.error)

    @admin.action(description="Replay selected dead letters (then their parked records)")
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        self._resolve(request, queryset, replay, "replayed")

    @admin.action(description="Discard selected dead letters (apply their parked records)")
    def discard_selected(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        self._resolve(request, queryset, discard, "discarded")

    def _resolve(
        self,
        request: HttpRequest,
        queryset: QuerySet[DeadLetter],
        action: Callable[..., Release],
        done: str,
    ) -> None:
        # Oldest first: for one key, the earlier dead letter must be released first.
        for letter_id in queryset.order_by("id").values_list("id", flat=True):
            try:
                release = action(dead_letter_id=letter_id)
            except (DeadLetterError, DeadLetterPublishError) as error:
                self.message_user(request, str(error), messages.ERROR)
                continue
            note = f"dead letter #{letter_id} {done}"
            if release.new_dead_letter_id is not None:
                note += f"; a parked record failed and is now dead letter #{release.new_dead_letter_id}"
                self.message_user(request, note, messages.WARNING)
            else:
                self.message_user(request, note, messages.SUCCESS)


def _payload_text(value: bytes | memoryview | None) -> str:
    raw = bytes(value) if value is not None else b""
    text = raw.decode("utf-8", errors="replace")
    # Not JSON: shown as it is, which is often why it is here.
    with suppress(ValueError):
        text = json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    return format_html("<pre>{}</pre>", text)


@admin.register(ParkedRecord)
class ParkedRecordAdmin(ReadOnlyAdmin[ParkedRecord]):
    list_display = ["id", "dead_letter", "consumer_group", "topic", "partition", "offset", "key", "parked_at"]
    list_filter = ["consumer_group", "topic"]
    search_fields = ["=key"]
    ordering = ["topic", "partition", "offset"]
