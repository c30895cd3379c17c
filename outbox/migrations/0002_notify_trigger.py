"""Wake the relay on commit: a NOTIFY sent in the inserting transaction is delivered only
when (and if) it commits, so the relay needs no hot polling."""

from django.db import migrations

CREATE = """
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
"""

DROP = """
DROP TRIGGER IF EXISTS outbox_notify ON outbox;
DROP FUNCTION IF EXISTS outbox_notify();
"""


class Migration(migrations.Migration):
    dependencies = [("outbox", "0001_outbox")]
    operations = [migrations.RunSQL(CREATE, DROP)]
