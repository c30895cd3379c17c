from django.db import migrations

import outbox.models


class Migration(migrations.Migration):
    """The payload as a `json` column: kept as written, read back as text without rebuilding it
    (see JSONTextField). Rewrites the outbox table once (an exclusive lock while it runs: with
    the relay's retention of published rows, that is the last few days of events)."""

    dependencies = [("outbox", "0006_outbox_traceparent")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE outbox ALTER COLUMN payload TYPE json USING payload::json",
                    reverse_sql="ALTER TABLE outbox ALTER COLUMN payload TYPE jsonb USING payload::jsonb",
                )
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="outboxrecord", name="payload", field=outbox.models.JSONTextField()
                )
            ],
        )
    ]
