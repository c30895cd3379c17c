"""One statement trigger per outbox insert instead of two: the trigger that lists the new rows in
`outbox_pending` also wakes the relay (the NOTIFY is still delivered only at commit).

Placing an order runs it once per transaction, so it is part of the outbox's write overhead.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION outbox_pending_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox_pending (id) SELECT id FROM added WHERE published_at IS NULL;
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END;
$$;
DROP TRIGGER IF EXISTS outbox_notify ON outbox;
DROP FUNCTION IF EXISTS outbox_notify();
"""

DROP = """
CREATE OR REPLACE FUNCTION outbox_pending_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox_pending (id) SELECT id FROM added WHERE published_at IS NULL;
    RETURN NULL;
END;
$$;
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
"""


class Migration(migrations.Migration):
    dependencies = [("outbox", "0003_hot_marks")]
    operations = [migrations.RunSQL(CREATE, DROP)]
