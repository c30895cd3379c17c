from django.db import migrations, models


class Migration(migrations.Migration):
    """ce_tracestate of each event, beside its traceparent. Nullable without a default, as
    0006: adding it to a large outbox only changes the catalog."""

    dependencies = [("outbox", "0008_pending_key_hash")]

    operations = [
        migrations.AddField(
            model_name="outboxrecord",
            name="tracestate",
            field=models.CharField(
                blank=True,
                help_text="ce_tracestate: the vendors' W3C tracestate of that trace context",
                max_length=512,
                null=True,
            ),
        ),
    ]
