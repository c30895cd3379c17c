"""Marks become HOT updates: the relay's mark rewrites a row on its own page, with no new index entry.

A mark used to cost a new row version plus an entry in each of the outbox's six other indexes,
because `published_at` sat in two partial indexes' predicates (PostgreSQL then cannot update in
place). Now no index of `outbox` covers `published_at`, `kafka_partition` or `kafka_offset`:

- the relay's working set moves to `outbox_pending` (the ids of unpublished rows), kept by
  statement triggers on `outbox`, so every writer (emit, COPY, a fix by hand) keeps it right:
  an insert adds ids, setting published_at removes them (setting it back to NULL adds them
  again), and so do DELETE and TRUNCATE;
- retention walks the primary key from the oldest row instead of `outbox_published`;
- `outbox_type_time` goes: the admin orders by id and never used it;
- fillfactor 50 leaves room on each page for the marked version of its rows.
"""

from django.db import migrations

CREATE = """
ALTER TABLE outbox SET (fillfactor = 50);

CREATE TABLE outbox_pending (id bigint PRIMARY KEY);
INSERT INTO outbox_pending (id) SELECT id FROM outbox WHERE published_at IS NULL;

CREATE FUNCTION outbox_pending_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox_pending (id) SELECT id FROM added WHERE published_at IS NULL;
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_pending_add AFTER INSERT ON outbox
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION outbox_pending_add();

-- A row set back to unpublished (published_at = NULL, to publish it again) is pending again.
CREATE FUNCTION outbox_pending_mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM outbox_pending AS p USING marked AS m WHERE p.id = m.id AND m.published_at IS NOT NULL;
    INSERT INTO outbox_pending (id) SELECT id FROM marked WHERE published_at IS NULL ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_pending_mark AFTER UPDATE ON outbox
    REFERENCING NEW TABLE AS marked FOR EACH STATEMENT EXECUTE FUNCTION outbox_pending_mark();

-- A row whose id changes leaves its old id behind (the statement trigger above adds the new
-- one). Only UPDATEs that set id fire it, so marks never do.
CREATE FUNCTION outbox_pending_rekey() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM outbox_pending WHERE id = OLD.id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_pending_rekey AFTER UPDATE OF id ON outbox
    FOR EACH ROW WHEN (OLD.id <> NEW.id) EXECUTE FUNCTION outbox_pending_rekey();

CREATE FUNCTION outbox_pending_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM outbox_pending AS p USING gone AS g WHERE p.id = g.id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_pending_forget AFTER DELETE ON outbox
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION outbox_pending_forget();

CREATE FUNCTION outbox_pending_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE outbox_pending;
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_pending_truncate AFTER TRUNCATE ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_pending_truncate();
"""

DROP = """
DROP TRIGGER IF EXISTS outbox_pending_truncate ON outbox;
DROP TRIGGER IF EXISTS outbox_pending_forget ON outbox;
DROP TRIGGER IF EXISTS outbox_pending_rekey ON outbox;
DROP TRIGGER IF EXISTS outbox_pending_mark ON outbox;
DROP TRIGGER IF EXISTS outbox_pending_add ON outbox;
DROP FUNCTION IF EXISTS outbox_pending_truncate();
DROP FUNCTION IF EXISTS outbox_pending_forget();
DROP FUNCTION IF EXISTS outbox_pending_rekey();
DROP FUNCTION IF EXISTS outbox_pending_mark();
DROP FUNCTION IF EXISTS outbox_pending_add();
DROP TABLE IF EXISTS outbox_pending;
ALTER TABLE outbox RESET (fillfactor);
"""


class Migration(migrations.Migration):
    dependencies = [("outbox", "0002_notify_trigger")]
    operations = [
        migrations.RemoveIndex(model_name="outboxrecord", name="outbox_unpublished"),
        migrations.RemoveIndex(model_name="outboxrecord", name="outbox_published"),
        migrations.RemoveIndex(model_name="outboxrecord", name="outbox_type_time"),
        migrations.RunSQL(CREATE, DROP),
    ]
