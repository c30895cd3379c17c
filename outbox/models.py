"""The transactional outbox: rows written with the domain change, published by the relay."""

from typing import Any

from django.contrib.postgres.indexes import BrinIndex
from django.db import models


class JSONTextField(models.JSONField):
    """JSON kept as it was written: a PostgreSQL `json` column (validated, stored as text).

    The relay sends every payload as text. A `jsonb` column parses and rebuilds the JSON at
    insert and turns it back into text at every read (~16 us per 0.75 KB row here, most of
    the relay's reading); `json` does neither, and Kafka gets the bytes emit() wrote. The
    `->` operators work as on jsonb (`payload__step` in a query); containment and GIN
    indexes do not, and no code here uses them.
    """

    def db_type(self, connection: Any) -> str:
        return "json"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if not isinstance(value, str):
            return value  # psycopg decodes `json` itself (Django only leaves `jsonb` as text)
        return super().from_db_value(value, expression, connection)


class OutboxRecord(models.Model):
    """One event waiting for (or done with) publication to Kafka.

    Written by `outbox.emit.emit()` in the transaction of the change it describes; the relay
    publishes unpublished rows in commit order and stamps where Kafka stored them.
    """

    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(unique=True, help_text="ce_id: unique, the consumers' dedupe key")
    topic = models.CharField(max_length=100)
    key = models.CharField(max_length=200, help_text="the aggregate id; the Kafka record key")
    event_type = models.CharField(max_length=150, help_text="ce_type, e.g. orders.OrderRequested")
    data_version = models.PositiveSmallIntegerField(help_text="ce_dataversion: the contract version")
    source = models.CharField(max_length=50, help_text="ce_source, e.g. /orders")
    correlation_id = models.CharField(max_length=128)
    causation_id = models.CharField(max_length=128, blank=True, default="")
    occurred_at = models.DateTimeField(help_text="ce_time")
    payload = JSONTextField()
    # NULL, not "": rows written before the column existed have none, and adding a nullable
    # column without a default to a large outbox is a catalog change only.
    traceparent = models.CharField(  # noqa: DJ001
        max_length=55,
        null=True,
        blank=True,
        help_text="ce_traceparent: the W3C trace context it was emitted in",
    )
    tracestate = models.CharField(  # noqa: DJ001
        max_length=512,
        null=True,
        blank=True,
        help_text="ce_tracestate: the vendors' W3C tracestate of that trace context",
    )
    published_at = models.DateTimeField(null=True, blank=True)
    kafka_partition = models.IntegerField(null=True, blank=True)
    kafka_offset = models.BigIntegerField(null=True, blank=True)

    class Meta:
        db_table = "outbox"
        # No index may cover published_at, kafka_partition or kafka_offset: the relay's mark
        # is then a HOT update (no new index entries). Unpublished rows are listed in the
        # table `outbox_pending` instead, kept by triggers (migration 0003).
        indexes = [
            models.Index(fields=["correlation_id"], name="outbox_correlation"),  # the story of an order
            models.Index(fields=["key"], name="outbox_key"),  # admin search by aggregate id
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.key} ({self.event_id})"

    @property
    def is_published(self) -> bool:
        return self.published_at is not None


class PublishedEvent(models.Model):
    """The compact record of one published event, kept after its outbox row is deleted.

    Written by the relay in the statement that marks the outbox row published; no payload.
    Kept for EVENT_LOG_RETENTION_DAYS, so the story of an older order still shows its chain
    and `manage.py audit` can check it against Kafka and the inboxes.
    """

    # The outbox row's id: commit-ordered like the outbox, and no sequence of its own.
    id = models.BigIntegerField(primary_key=True)
    event_id = models.UUIDField()
    event_type = models.CharField(max_length=150)
    topic = models.CharField(max_length=100)
    key = models.CharField(max_length=200)
    correlation_id = models.CharField(max_length=128)
    causation_id = models.CharField(max_length=128, blank=True, default="")
    occurred_at = models.DateTimeField()
    published_at = models.DateTimeField()
    kafka_partition = models.IntegerField()
    kafka_offset = models.BigIntegerField()

    class Meta:
        db_table = "outbox_event_log"
        # Every index costs each mark an entry: only what the story and the audit look rows up
        # by. Records are written in about published_at order, so a BRIN index (a summary per
        # block range, barely touched by an insert) serves the audit's time windows; the
        # retention clean-up walks the primary key, as the outbox's does.
        indexes = [
            models.Index(fields=["correlation_id"], name="event_log_correlation"),
            BrinIndex(fields=["published_at"], name="event_log_published"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.topic}/{self.kafka_partition}@{self.kafka_offset} ({self.event_id})"
