"""What the consumer runner keeps in the database: the inbox, dead letters and parked records.

- `InboxEntry`: one row per (consumer group, ce_id) handled, written in the handler's own
  transaction; a redelivered event finds its row and changes nothing. It also says where the
  event came from, which is what the story of an order shows per event.
- `DeadLetter`: a record a group could not handle (its handler kept failing, or it is not a
  valid event), kept byte for byte with the error until someone replays or discards it.
- `ParkedRecord`: a later record of the same key as a pending dead letter, stored instead of
  applied so one aggregate's events never apply out of order; released by replay or discard.
"""

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now


class InboxEntry(models.Model):
    consumer_group = models.CharField(max_length=200, help_text="the Kafka consumer group (one per context)")
    event_id = models.UUIDField(help_text="ce_id: the dedupe key")
    event_type = models.CharField(max_length=150)
    topic = models.CharField(max_length=100)
    partition = models.IntegerField()
    offset = models.BigIntegerField()
    # Kafka keys may be absent, which is not the same as empty.
    key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    correlation_id = models.CharField(max_length=128)
    handled_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "inbox"
        verbose_name = "inbox entry"
        verbose_name_plural = "inbox"
        constraints = [
            # event_id first: the story looks events up by id across groups.
            models.UniqueConstraint(fields=["event_id", "consumer_group"], name="inbox_event_once_per_group"),
        ]
        # No other index: every one costs each handled event an insert (the story finds inbox
        # rows by event id; the admin's search by correlation id may scan).

    def __str__(self) -> str:
        return f"{self.consumer_group}: {self.event_type} {self.event_id}"


class DeadLetterStatus(models.TextChoices):
    PENDING = "pending", "pending"
    REPLAYED = "replayed", "replayed"
    DISCARDED = "discarded", "discarded"
    # Not a dead letter yet: a failed record waiting for its next scheduled retry (`retry_at`,
    # CONSUMER_RETRY_SCHEDULE); its key is blocked like a pending dead letter's.
    RETRYING = "retrying", "retrying"


class DeadLetterReason(models.TextChoices):
    HANDLER_FAILED = "handler_failed", "handler failed"
    INVALID_RECORD = "invalid_record", "invalid record"
    # Kept until a consumer that knows the version runs (see deadletters.replay_known_versions).
    NEWER_VERSION = "newer_version", "newer version"


class DeadLetter(models.Model):
    consumer_group = models.CharField(max_length=200)
    context = models.CharField(max_length=100, help_text="the context whose handlers replay it")
    topic = models.CharField(max_length=100)
    partition = models.IntegerField()
    offset = models.BigIntegerField()
    record_id = models.CharField(
        max_length=200, help_text="the record's ce_id, or a digest of its value: offsets are reused"
    )
    key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    headers = models.JSONField(default=list, help_text="the record's headers, as [name, value] pairs")
    value = models.BinaryField(null=True, blank=True, help_text="the record's value, byte for byte")
    original_value = models.BinaryField(
        null=True, blank=True, help_text="the value as consumed, kept when the payload was edited"
    )
    event_id = models.CharField(max_length=128, blank=True, default="")
    event_type = models.CharField(max_length=150, blank=True, default="")
    correlation_id = models.CharField(max_length=128, blank=True, default="")
    reason = models.CharField(max_length=20, choices=DeadLetterReason.choices)
    error = models.TextField()
    attempts = models.PositiveIntegerField(default=1)
    status = models.CharField(
        max_length=10, choices=DeadLetterStatus.choices, default=DeadLetterStatus.PENDING
    )
    created_at = models.DateTimeField(db_default=Now())
    updated_at = models.DateTimeField(db_default=Now())
    resolved_at = models.DateTimeField(null=True, blank=True)
    retry_at = models.DateTimeField(null=True, blank=True, help_text="when a retrying record is tried again")

    class Meta:
        db_table = "dead_letter"
        constraints = [
            # A record redelivered after a crash finds its dead letter instead of making a second;
            # another record at the same position (a recreated topic) is another dead letter.
            models.UniqueConstraint(
                fields=["consumer_group", "topic", "partition", "offset", "record_id"],
                name="dead_letter_once_per_record",
            ),
        ]
        indexes = [
            # The runner's working set: the pending and retrying records of its group (whose keys
            # are blocked).
            models.Index(
                fields=["consumer_group", "topic", "key"],
                condition=Q(status__in=["pending", "retrying"]),
                name="dead_letter_blocking",
            ),
            models.Index(fields=["status", "created_at"], name="dead_letter_status"),
        ]

    def __str__(self) -> str:
        what = self.event_type or "invalid record"
        return f"#{self.pk} {what} {self.topic}[{self.partition}]@{self.offset} ({self.status})"

    @property
    def is_pending(self) -> bool:
        return self.status == DeadLetterStatus.PENDING


class DeadLetterEdit(models.Model):
    """Who changed a dead letter's payload, when, and what: one row per edit."""

    dead_letter = models.ForeignKey(DeadLetter, on_delete=models.PROTECT, related_name="edits")
    edited_by = models.CharField(max_length=150)
    edited_at = models.DateTimeField(db_default=Now())
    changes = models.JSONField(help_text="the fields changed, as {field: [before, after]}")
    previous_value = models.BinaryField(help_text="the payload before this edit")
    new_value = models.BinaryField(help_text="the payload after this edit")

    class Meta:
        db_table = "dead_letter_edit"

    def __str__(self) -> str:
        return f"dead letter #{self.dead_letter_id} edited by {self.edited_by} at {self.edited_at}"


class ParkedRecord(models.Model):
    dead_letter = models.ForeignKey(DeadLetter, on_delete=models.PROTECT, related_name="parked")
    consumer_group = models.CharField(max_length=200)
    topic = models.CharField(max_length=100)
    partition = models.IntegerField()
    offset = models.BigIntegerField()
    record_id = models.CharField(max_length=200)
    key = models.CharField(max_length=200)
    headers = models.JSONField(default=list)
    value = models.BinaryField(null=True, blank=True)
    parked_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "parked_record"
        constraints = [
            models.UniqueConstraint(
                fields=["consumer_group", "topic", "partition", "offset", "record_id"],
                name="parked_once_per_record",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset} behind dead letter #{self.dead_letter_id}"


class ProcessHeartbeat(models.Model):
    """A running relay or consumer says it is alive, and what it does, every few seconds.

    Kafka and PostgreSQL alone cannot say which relay leads since when, or which host and pid
    holds a group's partitions; `manage.py status` reads these rows and shows a row whose
    `beat_at` is older than STATUS_HEARTBEAT_STALE_SECONDS as dead. A process that stops
    cleanly deletes its row; one that is killed leaves it to go stale.
    """

    role = models.CharField(max_length=20, help_text="relay or consumer")
    name = models.CharField(max_length=100, help_text="'relay', or the consumer's context")
    host = models.CharField(max_length=255)
    pid = models.IntegerField()
    state = models.CharField(max_length=20, help_text="leader or standby (relay), consuming (consumer)")
    started_at = models.DateTimeField(db_default=Now())
    since = models.DateTimeField(null=True, blank=True, help_text="in this state since")
    beat_at = models.DateTimeField(db_default=Now())
    facts = models.JSONField(default=dict, help_text="partitions, rate, last handled time...")

    class Meta:
        db_table = "process_heartbeat"
        constraints = [
            models.UniqueConstraint(
                fields=["role", "name", "host", "pid"], name="heartbeat_once_per_process"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role} {self.name} on {self.host} pid {self.pid} ({self.state})"
