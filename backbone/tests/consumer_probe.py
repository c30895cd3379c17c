"""Test-only contracts, views and handlers for the consumer runner's tests.

The contracts belong (`app_label=`) to the contexts that own their topics, so the real
topic checks apply to them; the handlers subscribe to throw-away context names, one per
test, so every test has a consumer group of its own. A `manage.py consume` subprocess loads
this module with `--handlers backbone.tests.consumer_probe` and reads its context names from
PROBE_CONTEXTS.

`record_probe` writes one ProbeApplied row per application (a duplicate shows as two rows)
and keeps a ProbeView per key; it fails for keys listed in ProbeBroken, so a test can break a
handler and "deploy the fix" by deleting the row. For keys starting with `slow-` it first
sleeps in PostgreSQL (`pg_sleep`), so a test can terminate its session mid-batch.
`record_probes` is its batch twin (`register(context, batch=True)`): ProbeApplied rows in the
order it was given the events, one ProbeBatch row per call; it fails the whole call when one
of its keys is broken.
"""

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from django.conf import settings
from django.db import connection, models
from django.test.utils import isolate_apps

from backbone.conf import backbone_settings
from backbone.consumer import ConsumerRunner, RunnerOptions, RunStats, create_runner
from backbone.contracts import Event, registry
from backbone.deadletters import KafkaDeadLetterPublisher
from backbone.envelope import Envelope
from backbone.kafka import admin_config, group_id, physical_topic, producer_config
from backbone.subscriptions import subscribe, subscribe_batch
from backbone.testing import FakeMessage, envelope_for
from backbone.testing.memory_kafka import MemoryBroker
from outbox.emit import emit


class ProbeRecorded(Event, topic="orders", key="probe_key", version=2, app_label="orders"):
    probe_key: str
    seq: int
    amount: int = 0
    follow_up: bool = False


@registry.upcaster("orders.ProbeRecorded", from_version=1)
def _probe_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    # Version 1 called the amount `quantity`.
    payload = dict(payload)
    payload["amount"] = payload.pop("quantity", 0)
    return payload


class ProbeIgnored(Event, topic="orders", key="probe_key", app_label="orders"):
    """Nobody subscribes to it: the runner must skip it."""

    probe_key: str


class ProbeFollowedUp(Event, topic="orders", key="probe_key", app_label="orders"):
    """What record_probe emits when asked to: it must inherit the story of its cause."""

    probe_key: str
    seq: int


class ProbeShipped(Event, topic="shipments", key="probe_key", app_label="shipments"):
    """Only the rebuild test sends it, so replaying its topic from the start sees nothing else."""

    probe_key: str
    amount: int


with isolate_apps("backbone"):

    class ProbeView(models.Model):
        context = models.CharField(max_length=100)
        probe_key = models.CharField(max_length=100)
        total = models.IntegerField(default=0)
        events = models.IntegerField(default=0)
        last_seq = models.IntegerField(default=0)

        class Meta:
            app_label = "backbone"
            db_table = "test_probe_view"
            constraints = [models.UniqueConstraint(fields=["context", "probe_key"], name="probe_view_key")]

        def __str__(self) -> str:
            return f"{self.context} {self.probe_key}: {self.total}"

    class ProbeApplied(models.Model):
        context = models.CharField(max_length=100)
        probe_key = models.CharField(max_length=100)
        seq = models.IntegerField()
        event_id = models.CharField(max_length=64)
        correlation_id = models.CharField(max_length=128)

        class Meta:
            app_label = "backbone"
            db_table = "test_probe_applied"

        def __str__(self) -> str:
            return f"{self.context} {self.probe_key} #{self.seq}"

    class ProbeBroken(models.Model):
        probe_key = models.CharField(max_length=100, primary_key=True)

        class Meta:
            app_label = "backbone"
            db_table = "test_probe_broken"

        def __str__(self) -> str:
            return self.probe_key

    class ProbeBatch(models.Model):
        """One call of the batch probe handler: how many events it was given."""

        context = models.CharField(max_length=100)
        size = models.IntegerField()

        class Meta:
            app_label = "backbone"
            db_table = "test_probe_batch"

        def __str__(self) -> str:
            return f"{self.context}: {self.size} event(s)"


PROBE_MODELS: list[type[models.Model]] = [ProbeView, ProbeApplied, ProbeBroken, ProbeBatch]
REBUILDABLE_VIEWS: list[type[models.Model]] = [ProbeView]

_UPSERT_VIEW = """
    INSERT INTO test_probe_view (context, probe_key, total, events, last_seq) VALUES (%s, %s, %s, 1, %s)
    ON CONFLICT (context, probe_key) DO UPDATE
        SET total = test_probe_view.total + EXCLUDED.total, events = test_probe_view.events + 1,
            last_seq = EXCLUDED.last_seq
"""


SLOW_PREFIX = "slow-"
SLOW_SECONDS = 1.5


class ProbeHandlerBroken(RuntimeError):
    pass


def _handler_for(context: str) -> Callable[[Any, Envelope], None]:
    def record_probe(event: ProbeRecorded | ProbeShipped, envelope: Envelope) -> None:
        if ProbeBroken.objects.filter(probe_key=event.probe_key).exists():
            raise ProbeHandlerBroken(f"the probe handler is broken for {event.probe_key}")
        seq = getattr(event, "seq", 0)
        with connection.cursor() as cursor:
            if event.probe_key.startswith(SLOW_PREFIX):
                cursor.execute("SELECT pg_sleep(%s)", [SLOW_SECONDS])
            cursor.execute(_UPSERT_VIEW, [context, event.probe_key, event.amount, seq])
        ProbeApplied.objects.create(
            context=context,
            probe_key=event.probe_key,
            seq=seq,
            event_id=envelope.id,
            correlation_id=envelope.correlation_id,
        )
        if getattr(event, "follow_up", False):
            emit(ProbeFollowedUp(probe_key=event.probe_key, seq=seq))

    return record_probe


def _batch_handler_for(context: str) -> Callable[[Sequence[tuple[Any, Envelope]]], None]:
    def record_probes(items: Sequence[tuple[ProbeRecorded | ProbeShipped, Envelope]]) -> None:
        keys = {event.probe_key for event, _ in items}
        broken = sorted(ProbeBroken.objects.filter(probe_key__in=keys).values_list("probe_key", flat=True))
        if broken:
            raise ProbeHandlerBroken(f"the probe handler is broken for {', '.join(broken)}")
        ProbeBatch.objects.create(context=context, size=len(items))
        ProbeApplied.objects.bulk_create(
            ProbeApplied(
                context=context,
                probe_key=event.probe_key,
                seq=getattr(event, "seq", 0),
                event_id=envelope.id,
                correlation_id=envelope.correlation_id,
            )
            for event, envelope in items
        )
        for event, _ in items:
            if getattr(event, "follow_up", False):
                emit(ProbeFollowedUp(probe_key=event.probe_key, seq=event.seq))  # must raise

    return record_probes


def register(
    context: str, events: tuple[type[Event], ...] = (ProbeRecorded, ProbeShipped), *, batch: bool = False
) -> None:
    """Subscribe the probe handler (or its batch twin) for `context` (idempotent)."""
    for event_type in events:
        if batch:
            subscribe_batch(event_type, context=context)(_batch_handler_for(context))
        else:
            subscribe(event_type, context=context)(_handler_for(context))


def create_tables() -> None:
    with connection.schema_editor() as editor:
        for model in PROBE_MODELS:
            if model._meta.db_table not in connection.introspection.table_names():
                editor.create_model(model)


def drop_tables() -> None:
    with connection.schema_editor() as editor:
        for model in PROBE_MODELS:
            editor.delete_model(model)


# --- Producing test records straight to Kafka (no relay involved) -----------------------------

_producer: Producer | None = None


def producer() -> Producer:
    global _producer
    if _producer is None:
        _producer = Producer(producer_config())
    return _producer


def send(
    topic: str,
    *,
    key: str | None,
    value: bytes | None,
    headers: list[tuple[str, bytes]],
    partition: int | None = None,
    flush: bool = True,
) -> None:
    where = {"partition": partition} if partition is not None else {}
    producer().produce(
        physical_topic(topic), key=key.encode() if key else None, value=value, headers=headers, **where
    )
    if flush:
        flush_all()


def send_event(
    event: Event, *, flush: bool = True, partition: int | None = None, **envelope: Any
) -> Envelope:
    """Publish `event` as the relay would: CloudEvents headers, the aggregate id as key."""
    sent = envelope_for(event, **envelope)
    send(
        event.topic,
        key=event.key,
        value=event.to_json(),
        headers=sent.headers(),
        partition=partition,
        flush=flush,
    )
    return sent


def flush_all() -> None:
    remaining = producer().flush(30)
    assert remaining == 0, f"{remaining} test record(s) not delivered"


# --- Fixtures and helpers for the tests -------------------------------------------------------

PROBE_TOPICS = ("orders", "shipments")
ProbeContextFactory = Callable[..., str]  # the make_probe_context fixture


def partitions_of(topic: str) -> list[TopicPartition]:
    metadata = AdminClient(admin_config()).list_topics(physical_topic(topic), timeout=10)
    return [
        TopicPartition(physical_topic(topic), p)
        for p in sorted(metadata.topics[physical_topic(topic)].partitions)
    ]


def end_offsets(topic: str) -> dict[int, int]:
    reader = Consumer(
        {"bootstrap.servers": backbone_settings.KAFKA_BOOTSTRAP_SERVERS, "group.id": "probe-offsets"}
    )
    try:
        return {tp.partition: _high_watermark(reader, tp) for tp in partitions_of(topic)}
    finally:
        reader.close()


def _high_watermark(reader: Consumer, partition: TopicPartition) -> int:
    # Right after the session's topics are created, their leaders may not be elected yet.
    deadline = time.monotonic() + 30
    while True:
        try:
            return reader.get_watermark_offsets(partition, timeout=10)[1]
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def start_group_at_end(group: str, topics: tuple[str, ...]) -> None:
    """Commit the current end offsets for `group`, so it reads only what a test sends next."""
    committed = [
        TopicPartition(physical_topic(topic), partition, offset)
        for topic in topics
        for partition, offset in end_offsets(topic).items()
    ]
    admin = AdminClient(admin_config())
    request = [ConsumerGroupTopicPartitions(group, committed)]
    for future in admin.alter_consumer_group_offsets(request, request_timeout=10).values():
        future.result()


def committed_offsets(group: str, topic: str) -> dict[int, int]:
    admin = AdminClient(admin_config())
    request = [ConsumerGroupTopicPartitions(group, partitions_of(topic))]
    result = next(iter(admin.list_consumer_group_offsets(request, request_timeout=10).values())).result()
    return {tp.partition: tp.offset for tp in result.topic_partitions}


def consume_until_caught_up(context: str, **options: Any) -> RunStats:
    """Run the real runner in this process until its partitions are caught up."""
    options = {"once": True, "idle_exit": 60.0, "retry_delay": 0.01, **options}
    return create_runner(context=context, options=RunnerOptions.from_settings(context, **options)).run()


def subprocess_database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def consume_command(context: str, *args: str) -> list[str]:
    return [
        sys.executable,
        "manage.py",
        "consume",
        context,
        "--handlers",
        "backbone.tests.consumer_probe",
        "--retry-delay",
        "0.01",
        *args,
    ]


def subprocess_env(*contexts: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "KAFKA_NAMESPACE": backbone_settings.KAFKA_NAMESPACE,
        "PROBE_CONTEXTS": ",".join(contexts),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def run_consume(
    context: str, *args: str, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        consume_command(context, *args),
        cwd=settings.BASE_DIR,
        env=subprocess_env(context, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def consume_until_idle(context: str, *, idle_seconds: int = 60) -> subprocess.CompletedProcess[str]:
    """Run a shop context's real consumer (its own handlers only) until it has caught up."""
    return subprocess.run(
        [sys.executable, "manage.py", "consume", context, "--once", "--idle-exit", str(idle_seconds)],
        cwd=settings.BASE_DIR,
        env=subprocess_env(context),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def batch_sizes(context: str) -> list[int]:
    """The sizes of the batch probe handler's calls, in order."""
    return list(ProbeBatch.objects.filter(context=context).order_by("id").values_list("size", flat=True))


def applied(context: str, key: str) -> list[int]:
    """The seqs the probe handler applied for a key, in the order it applied them."""
    return list(
        ProbeApplied.objects.filter(context=context, probe_key=key)
        .order_by("id")
        .values_list("seq", flat=True)
    )


# --- The same helpers on an in-memory broker (backbone.testing.memory_kafka) ------------------


@dataclass
class MemoryKafka:
    """`send`, `send_event`, `end_offsets`, `committed_offsets` and `consume_until_caught_up`
    of this module, on a MemoryBroker: the real runner, database and dead-letter publisher,
    with no Kafka behind them (tests of the runner's logic; see docs/testing.md)."""

    broker: MemoryBroker = field(default_factory=MemoryBroker)

    def send(
        self,
        topic: str,
        *,
        key: str | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        partition: int | None = None,
        flush: bool = True,
    ) -> None:
        self.broker.append(physical_topic(topic), key=key, value=value, headers=headers, partition=partition)

    def send_event(
        self, event: Event, *, flush: bool = True, partition: int | None = None, **envelope: Any
    ) -> Envelope:
        sent = envelope_for(event, **envelope)
        self.send(
            event.topic, key=event.key, value=event.to_json(), headers=sent.headers(), partition=partition
        )
        return sent

    def end_offsets(self, topic: str) -> dict[int, int]:
        return self.broker.end_offsets(physical_topic(topic))

    def committed_offsets(self, group: str, topic: str) -> dict[int, int]:
        return self.broker.committed(group, physical_topic(topic))

    def publisher(self) -> KafkaDeadLetterPublisher:
        """The dead-letter publisher on this broker (for `replay`/`discard`'s publisher_factory)."""
        return KafkaDeadLetterPublisher(self.broker.producer())  # type: ignore[arg-type]

    def consume_until_caught_up(self, context: str, **options: Any) -> RunStats:
        """The real runner, as `consume_until_caught_up` runs it, on this broker."""
        options = {"once": True, "idle_exit": 60.0, "retry_delay": 0.01, **options}
        group = group_id(context)
        return ConsumerRunner(
            context=context,
            group=group,
            consumer=self.broker.consumer(group),
            publisher=self.publisher(),
            options=RunnerOptions.from_settings(context, **options),
        ).run()

    def dead_letter_copy(self, dead_letter_id: int, topic: str = "orders.dlq") -> FakeMessage:
        """The record the runner sent to `topic` for this dead letter."""
        for message in self.broker.messages(physical_topic(topic)):
            if (b"dlq_dead_letter_id", str(dead_letter_id).encode()) in [
                (name.encode(), value) for name, value in message.headers() or []
            ]:
                return message
        raise AssertionError(f"dead letter #{dead_letter_id} not found on {topic}")


# A subprocess (`manage.py consume --handlers backbone.tests.consumer_probe`) learns its contexts here.
for _context in filter(None, os.environ.get("PROBE_CONTEXTS", "").split(",")):
    register(_context)
