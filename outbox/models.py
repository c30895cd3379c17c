"""The transactional outbox: rows written with the domain change, published by the relay."""

from django.db import models


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
    # NULL, not "": rows written before the column existed have none, and adding a nullable
    # column without a default to a large outbox is a catalog change only.
    traceparent = models.CharField(  # noqa: DJ001
        max_length=55,
        null=True,
        blank=True,
        help_text="ce_traceparent: the W3C trace context it was emitted in",
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
