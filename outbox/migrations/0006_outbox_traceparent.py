from django.db import migrations, models


class Migration(migrations.Migration):
    """ce_traceparent of each event. Nullable without a default, so adding it to a large
    outbox only changes the catalog; rows written before it simply have no trace context."""

    dependencies = [("outbox", "0005_event_log")]

    operations = [
        migrations.AddField(
            model_name="outboxrecord",
            name="traceparent",
            field=models.CharField(
                blank=True,
                help_text="ce_traceparent: the W3C trace context it was emitted in",
                max_length=55,
                null=True,
            ),
        ),
    ]
