"""The admin's event catalog (staff only): every event type of the shop, for a team that plugs
a new context in.

The code's facts (backbone/catalog.py: owner, topic, key, versions, schema, readers) and the
outbox's, in two queries for the whole page, not per type: how many of each type were published
in the last hour and when the last one happened (one aggregate), and the latest few rows of each
type (one window query), whose newest payload is the example when there is one and whose stories
are linked. The outbox keeps rows for OUTBOX_RETENTION_HOURS, so "last" means within that.
"""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib import admin
from django.db.models import Count, F, Max, Q, Window
from django.db.models.functions import RowNumber
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from backbone.catalog import EventTypeFacts, event_types
from backbone.kafka import group_id

from .models import OutboxRecord

RECENT_PER_TYPE = 3


@dataclass(frozen=True)
class RecentEvent:
    correlation_id: str
    key: str
    occurred_at: datetime


@dataclass(frozen=True)
class ReaderRow:
    group: str
    context: str
    handlers: tuple[str, ...]


@dataclass(frozen=True)
class CatalogEntry:
    facts: EventTypeFacts
    readers: tuple[ReaderRow, ...]
    schema: str  # JSON, indented
    example: str
    example_is_real: bool  # the newest payload in the outbox, not one made from the schema
    published_last_hour: int
    last_at: datetime | None
    recent: tuple[RecentEvent, ...]

    @property
    def type_name(self) -> str:
        return self.facts.type_name

    # Plain values for the template, which would call the contract class (a callable) it was given.
    @property
    def owner(self) -> str:
        return self.facts.contract.context

    @property
    def key_field(self) -> str:
        return self.facts.contract.key_field

    @property
    def version(self) -> int:
        return self.facts.contract.contract_version

    @property
    def description(self) -> str:
        return " ".join((self.facts.contract.__doc__ or "").split())


def entries(now: datetime | None = None) -> list[CatalogEntry]:
    facts = event_types()
    names = [item.type_name for item in facts]
    counts = _published_counts(names, (now or timezone.now()) - timedelta(hours=1))
    recent = _recent_rows(names)
    return [_entry(item, counts.get(item.type_name), recent.get(item.type_name, [])) for item in facts]


def _published_counts(names: list[str], since: datetime) -> dict[str, dict[str, Any]]:
    """Type -> {last_hour, last_at}: one GROUP BY over the outbox."""
    rows = (
        OutboxRecord.objects.filter(event_type__in=names)
        .values("event_type")
        .annotate(last_hour=Count("id", filter=Q(published_at__gte=since)), last_at=Max("occurred_at"))
        .order_by()
    )
    return {row["event_type"]: row for row in rows}


def _recent_rows(names: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Type -> its newest outbox rows, newest first: one query with a window per type."""
    rank = Window(RowNumber(), partition_by=[F("event_type")], order_by=F("id").desc())
    rows = (
        OutboxRecord.objects.filter(event_type__in=names)
        .annotate(rank=rank)
        .filter(rank__lte=RECENT_PER_TYPE)
        .order_by("event_type", "rank")
        .values("event_type", "correlation_id", "key", "occurred_at", "payload")
    )
    by_type: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_type.setdefault(row["event_type"], []).append(row)
    return by_type


def _entry(
    facts: EventTypeFacts, counts: dict[str, Any] | None, recent: list[dict[str, Any]]
) -> CatalogEntry:
    example = recent[0]["payload"] if recent else facts.example()
    return CatalogEntry(
        facts=facts,
        readers=tuple(ReaderRow(group_id(r.context), r.context, r.handlers) for r in facts.readers),
        schema=json.dumps(facts.schema(), indent=2),
        example=json.dumps(example, indent=2),
        example_is_real=bool(recent),
        published_last_hour=counts["last_hour"] if counts else 0,
        last_at=counts["last_at"] if counts else None,
        recent=tuple(RecentEvent(row["correlation_id"], row["key"], row["occurred_at"]) for row in recent),
    )


def event_catalog(request: HttpRequest) -> HttpResponse:
    catalog = entries()
    context = {
        **admin.site.each_context(request),
        "title": "Event catalog",
        "entries": catalog,
        "asyncapi_url": "/api/asyncapi/",
    }
    return TemplateResponse(request, "outbox/catalog.html", context)
