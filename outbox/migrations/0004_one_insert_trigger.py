"""Cheaper triggers on `outbox`.

- One statement trigger per insert instead of two: the trigger that lists the new rows in
  `outbox_pending` also wakes the relay (the NOTIFY is still delivered only at commit).
  Placing an order runs it once per transaction, so it is part of the outbox's write overhead.
- The mark and delete triggers remove ids with `id = ANY(ARRAY(...))`, which always walks
  `outbox_pending`'s primary key. As a join with the transition table, the cached plan could
  scan the whole table instead, and right after a burst that table is full of dead rows: each
  mark then took tens of milliseconds, and the relay waits for the previous marks before its
  next scan, so the latency of every event grew with it.
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

CREATE OR REPLACE FUNCTION outbox_pending_mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM outbox_pending
    WHERE id = ANY(ARRAY(SELECT id FROM marked WHERE published_at IS NOT NULL));
    INSERT INTO outbox_pending (id) SELECT id FROM marked WHERE published_at IS NULL ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION outbox_pending_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM outbox_pending WHERE id = ANY(ARRAY(SELECT id FROM gone));
    RETURN NULL;
END;
$$;
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

CREATE OR REPLACE FUNCTION outbox_pending_mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM outbox_pending AS p USING marked AS m WHERE p.id = m.id AND m.published_at IS NOT NULL;
    INSERT INTO outbox_pending (id) SELECT id FROM marked WHERE published_at IS NULL ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION outbox_pending_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM outbox_pending AS p USING gone AS g WHERE p.id = g.id;
    RETURN NULL;
END;
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("outbox", "0003_hot_marks")]
    operations = [migrations.RunSQL(CREATE, DROP)]
