"""Rebuild a context's read models from the topics (`manage.py rebuild_views <context>`).

A context lists its rebuildable views in its handlers.py: `REBUILDABLE_VIEWS = [Model, ...]`.
A rebuild empties them, forgets what the context's group handled (its inbox rows) and moves
the group's committed offsets back to the start of its topics; the next `consume <context>`
then replays every event into the empty views. The group must have no running consumer.

Every handler of the context runs again, not only the views' ones: handlers that change
other state must be idempotent on state (an order already VALIDATED ignores StockReserved
again), as they must be for replays and duplicates anyway.

The offsets move first: if the rebuild dies half-way, the inbox still remembers everything
and the replay changes nothing; running the rebuild again finishes it.
"""

import logging
from importlib import import_module

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from django.db import connection, models, transaction

from .kafka import admin_config, group_id, physical_topic
from .models import InboxEntry
from .subscriptions import subscriptions

log = logging.getLogger(__name__)


class RebuildError(Exception):
    """The rebuild cannot start; the message says why in one line."""


def rebuildable_views(context: str) -> list[type[models.Model]]:
    """The REBUILDABLE_VIEWS of the modules holding the context's handlers (its handlers.py)."""
    modules = {sub.handler.__module__ for subs in subscriptions.for_context(context).values() for sub in subs}
    views: list[type[models.Model]] = []
    for name in sorted(modules):
        for view in getattr(import_module(name), "REBUILDABLE_VIEWS", []):
            if view not in views:
                views.append(view)
    return views


def ensure_group_stopped(context: str) -> None:
    group = group_id(context)
    admin = AdminClient(admin_config())  # kept referenced until the future resolves
    members = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15).members
    if members:
        raise RebuildError(
            f"stop the `manage.py consume {context}` process(es) first: "
            f"consumer group {group} has {len(members)} active member(s)"
        )


def rewind_group(context: str) -> int:
    """Commit the earliest offsets of the context's topics for its group; returns partitions."""
    admin = AdminClient(admin_config())
    partitions = []
    for topic in sorted(subscriptions.topics_for(context)):
        name = physical_topic(topic)
        metadata = admin.list_topics(name, timeout=10).topics[name]
        partitions += [TopicPartition(name, partition) for partition in metadata.partitions]
    earliest = admin.list_offsets({tp: OffsetSpec.earliest() for tp in partitions}, request_timeout=10)
    offsets = [
        TopicPartition(tp.topic, tp.partition, future.result().offset) for tp, future in earliest.items()
    ]
    request = [ConsumerGroupTopicPartitions(group_id(context), offsets)]
    for future in admin.alter_consumer_group_offsets(request, request_timeout=10).values():
        future.result(timeout=15)
    return len(offsets)


def clear_views(context: str, views: list[type[models.Model]]) -> int:
    """Empty the views and the group's inbox in one transaction; returns inbox rows deleted."""
    tables = ", ".join(connection.ops.quote_name(view._meta.db_table) for view in views)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables}")
        cursor.execute(
            f"DELETE FROM {InboxEntry._meta.db_table} WHERE consumer_group = %s", [group_id(context)]
        )
        deleted: int = cursor.rowcount
        return deleted


def rebuild(context: str) -> tuple[list[type[models.Model]], int]:
    """Prepare the replay: rewind the group, then empty the views and the inbox."""
    views = rebuildable_views(context)
    if not views:
        raise RebuildError(f"context {context!r} declares no REBUILDABLE_VIEWS in its handlers.py")
    ensure_group_stopped(context)
    partitions = rewind_group(context)
    forgotten = clear_views(context, views)
    log.info(
        "%s: rewound %s partition(s), emptied %s, forgot %s inbox row(s)",
        context,
        partitions,
        ", ".join(view._meta.label for view in views),
        forgotten,
    )
    return views, forgotten
