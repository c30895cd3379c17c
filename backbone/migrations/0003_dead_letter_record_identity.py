"""Dead letters and parked records are told apart by the record's identity, not its position.

A recreated topic starts its offsets at 0 again, so a new record can land on the position of a
pending dead letter; matched by position alone, it was taken for a redelivery and skipped.
`record_id` is the ce_id (or, without one, a digest of the value), as ConsumedRecord.identity.
"""

from django.db import migrations, models

_BACKFILL = """
    UPDATE dead_letter SET record_id = CASE
        WHEN event_id <> '' THEN event_id
        ELSE 'sha256:' || encode(sha256(coalesce(value, ''::bytea)), 'hex') END;
    UPDATE parked_record SET record_id = coalesce(
        (SELECT header ->> 1 FROM jsonb_array_elements(headers) AS header
         WHERE header ->> 0 = 'ce_id' AND jsonb_array_length(header) = 2 AND length(header ->> 1) <= 128
         LIMIT 1),
        'sha256:' || encode(sha256(coalesce(value, ''::bytea)), 'hex'));
"""


class Migration(migrations.Migration):
    dependencies = [
        ("backbone", "0002_inbox_without_correlation_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="deadletter",
            name="record_id",
            field=models.CharField(
                default="",
                help_text="the record's ce_id, or a digest of its value: offsets are reused",
                max_length=200,
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="parkedrecord",
            name="record_id",
            field=models.CharField(default="", max_length=200),
            preserve_default=False,
        ),
        migrations.RunSQL(_BACKFILL, migrations.RunSQL.noop),
        migrations.RemoveConstraint(model_name="deadletter", name="dead_letter_once_per_record"),
        migrations.AddConstraint(
            model_name="deadletter",
            constraint=models.UniqueConstraint(
                fields=("consumer_group", "topic", "partition", "offset", "record_id"),
                name="dead_letter_once_per_record",
            ),
        ),
        migrations.RemoveConstraint(model_name="parkedrecord", name="parked_once_per_record"),
        migrations.AddConstraint(
            model_name="parkedrecord",
            constraint=models.UniqueConstraint(
                fields=("consumer_group", "topic", "partition", "offset", "record_id"),
                name="parked_once_per_record",
            ),
        ),
    ]
