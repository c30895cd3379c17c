"""The event log: a compact record of every published event, which outlives the outbox rows.

The relay writes it in the statement that marks rows published (`store.MARK_PUBLISHED`); rows
published before this migration are copied once.
"""

import django.contrib.postgres.indexes
from django.db import migrations, models

BACKFILL = """
INSERT INTO outbox_event_log (id, event_id, event_type, topic, key, correlation_id, causation_id,
    occurred_at, published_at, kafka_partition, kafka_offset)
SELECT id, event_id, event_type, topic, key, correlation_id, causation_id, occurred_at,
    published_at, kafka_partition, kafka_offset
FROM outbox
WHERE published_at IS NOT NULL AND kafka_partition IS NOT NULL AND kafka_offset IS NOT NULL
"""


class Migration(migrations.Migration):
    dependencies = [
        ("outbox", "0004_one_insert_trigger"),
    ]

    operations = [
        migrations.CreateModel(
            name="PublishedEvent",
            fields=[
                ("id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("event_id", models.UUIDField()),
                ("event_type", models.CharField(max_length=150)),
                ("topic", models.CharField(max_length=100)),
                ("key", models.CharField(max_length=200)),
                ("correlation_id", models.CharField(max_length=128)),
                ("causation_id", models.CharField(blank=True, default="", max_length=128)),
                ("occurred_at", models.DateTimeField()),
                ("published_at", models.DateTimeField()),
                ("kafka_partition", models.IntegerField()),
                ("kafka_offset", models.BigIntegerField()),
            ],
            options={
                "db_table": "outbox_event_log",
                "indexes": [
                    models.Index(fields=["correlation_id"], name="event_log_correlation"),
                    django.contrib.postgres.indexes.BrinIndex(fields=["published_at"], name="event_log_published"),
                ],
            },
        ),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
    ]
