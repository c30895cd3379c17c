"""The transactional outbox: rows written with the domain change, published by the relay."""

from django.db import models
from django.db.models import Q


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
    payload = models.JSONField()
    published_at = models.DateTimeField(null=True, blank=True)
    kafka_partition = models.IntegerField(null=True, blank=True)
    kafka_offset = models.BigIntegerField(null=True, blank=True)

    class Meta:
        db_table = "outbox"
        indexes = [
            # The relay's working set: small however long published rows are kept.
            models.Index(fields=["id"], condition=Q(published_at__isnull=True), name="outbox_unpublished"),
            models.Index(
                fields=["published_at"], condition=Q(published_at__isnull=False), name="outbox_published"
            ),
            models.Index(fields=["correlation_id"], name="outbox_correlation"),
            models.Index(fields=["key"], name="outbox_key"),
            models.Index(fields=["event_type", "occurred_at"], name="outbox_type_time"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.key} ({self.event_id})"

    @property
    def is_published(self) -> bool:
        return self.published_at is not None
