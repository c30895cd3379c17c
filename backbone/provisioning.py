"""Create the fixed topics and their dead-letter topics, idempotently."""

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from backbone.conf import backbone_settings

from .kafka import admin_config, physical_topic
from .topics import Topic, topics

log = logging.getLogger(__name__)


def planned_topics(partitions: int | None = None, replication: int | None = None) -> list[NewTopic]:
    partitions = partitions or backbone_settings.KAFKA_TOPIC_PARTITIONS
    replication = replication or backbone_settings.KAFKA_REPLICATION_FACTOR
    planned = []
    for spec in topics().values():
        planned.append(NewTopic(physical_topic(spec.name), partitions, replication, config=_config(spec)))
        planned.append(
            NewTopic(physical_topic(spec.dead_letter_topic), partitions, replication, config=_size_limit())
        )
    return planned


def _config(spec: Topic) -> dict[str, str]:
    config = _size_limit()
    if spec.compacted:
        # Keep every level change for a while (views rebuild from it), then the latest per sku.
        config.update({"cleanup.policy": "compact,delete", "retention.ms": str(30 * 24 * 3600 * 1000)})
    return config


def _size_limit() -> dict[str, str]:
    """Stated, not left to the broker's default: the producers batch up to the same size."""
    return {"max.message.bytes": str(backbone_settings.KAFKA_TOPIC_MAX_MESSAGE_BYTES)}


def ensure_topics(partitions: int | None = None, replication: int | None = None) -> dict[str, str]:
    """Create whichever topics are missing; returns topic -> "created" or "exists"."""
    admin = AdminClient(admin_config())
    outcome: dict[str, str] = {}
    futures = admin.create_topics(planned_topics(partitions, replication), request_timeout=15)
    for name, future in futures.items():
        try:
            future.result(timeout=20)
            outcome[name] = "created"
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            outcome[name] = "exists"
    return outcome


def delete_namespace(prefix: str, timeout: float = 10.0) -> list[str]:
    """Delete every topic and consumer group whose name starts with `prefix` (a test run's
    namespace); returns what could not be deleted, so the caller can say so instead of failing.

    Groups with members still connected cannot be deleted: they stay, and are reported."""
    if not prefix:
        raise ValueError("refusing to delete the topics of the empty namespace")
    admin = AdminClient(admin_config())
    failed: list[str] = []
    try:
        topics = [name for name in admin.list_topics(timeout=timeout).topics if name.startswith(prefix)]
        groups = [
            listing.group_id
            for listing in admin.list_consumer_groups(request_timeout=timeout).result(timeout).valid
            if listing.group_id.startswith(prefix)
        ]
    except (KafkaException, TimeoutError) as error:
        return [f"the namespace's listing ({error})"]
    futures = {
        **(admin.delete_topics(topics, request_timeout=timeout) if topics else {}),
        **(admin.delete_consumer_groups(groups, request_timeout=timeout) if groups else {}),
    }
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
        except (KafkaException, TimeoutError) as error:
            log.warning("could not delete %s: %s", name, error)
            failed.append(name)
    return failed
