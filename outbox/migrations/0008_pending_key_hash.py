"""Each pending id carries the hash of its row's key, so relay shards split the backlog.

`outbox_pending.key_hash` is `hashtext(key)` made non-negative, written by the same triggers
that list the id. A relay with N shards publishes the ids whose `key_hash % N` is its shard:
every row of a key lands in one shard, whatever its topic, so an aggregate keeps commit order.
The hash is stored rather than the shard, so changing N needs no rewrite of the table.
"""

from django.db import migrations

CREATE = """
ALTER TABLE outbox_pending ADD COLUMN key_hash integer NOT NULL DEFAULT 0;
UPDATE outbox_pending AS p SET key_hash = hashtext(o.key) & 2147483647 FROM outbox AS o WHERE o.id = p.id;

CREATE OR REPLACE FUNCTION outbox_pending_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox_pending (id, key_hash)
    SELECT id, hashtext(key) & 2147483647 FROM added WHERE published_at IS NULL;
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION outbox_pending_mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM outbox_pending
    WHERE id = ANY(ARRAY(SELECT id FROM marked WHERE published_at IS NOT NULL));
    INSERT INTO outbox_pending (id, key_hash)
    SELECT id, hashtext(key) & 2147483647 FROM marked WHERE published_at IS NULL
    ON CONFLICT (id) DO UPDATE SET key_hash = excluded.key_hash;
    RETURN NULL;
END;
$$;
"""

DROP = """
CREATE OR REPLACE FUNCTION outbox_pending_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox_pending (id) SELECT id FROM added WHERE published_at IS NULL;
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION outbox_pending_mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM outbox_pending
    WHERE id = ANY(ARRAY(SELECT id FROM marked WHERE published_at IS NOT NULL));
    INSERT INTO outbox_pending (id) SELECT id FROM marked WHERE published_at IS NULL ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$;
ALTER TABLE outbox_pending DROP COLUMN key_hash;
"""


class Migration(migrations.Migration):
    dependencies = [("outbox", "0007_payload_as_written")]
    operations = [migrations.RunSQL(CREATE, DROP)]
